/**
 * The cache folder's index: which entries it holds and when each was last used, saved atomically
 * so that the LRU order survives restarts, with least recently used entries evicted past the size cap.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheSettings } from './cache-policy.js';
import { isPartialFile, partialPath } from './download.js';
import { sha256 } from './source-plan.js';

interface IndexEntry {
  key: string;
  file: string;
  size: number;
  lastUsed: number;
}

interface IndexFile {
  version: 1;
  entries: IndexEntry[];
}

const INDEX_FILE = 'index.json';
const ENTRY_FILE = /^[0-9a-f]{32}\.safetensors$/;

/** The file an entry is stored in: named for its key, never for anything secret. */
function entryFile(key: string): string {
  return `${sha256(key).slice(0, 32)}.safetensors`;
}

export class CacheIndex {
  private readonly entries = new Map<string, IndexEntry>();
  private loaded: Promise<void> | undefined;
  private writes: Promise<void> = Promise.resolve();
  private clock = 0;
  /** The entry the last fetch returned: never evicted, as a prediction may still be reading it. */
  private lastFetched: string | undefined;

  constructor(private readonly settings: CacheSettings) {}

  /** Reads the index once (again after a failure), tidying the folder to match it. */
  load(): Promise<void> {
    this.loaded ??= this.read().catch((error: unknown) => {
      this.loaded = undefined;
      throw new Error(`the LoRA cache folder ${this.settings.dir} cannot be used: ${(error as Error).message}`);
    });
    return this.loaded;
  }

  /** A cached entry's path (marking it used), or undefined when absent or gone from disk. */
  async lookup(key: string): Promise<string | undefined> {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const path = join(this.settings.dir, entry.file);
    try {
      await stat(path);
    } catch {
      this.entries.delete(key);
      await this.save();
      return undefined;
    }
    entry.lastUsed = this.tick();
    this.lastFetched = key;
    await this.save();
    return path;
  }

  /** Moves the verified file `partial` into place as the entry for `key`, then evicts; returns its path. */
  async add(key: string, partial: string): Promise<string> {
    const size = (await stat(partial)).size;
    const file = entryFile(key);
    const path = join(this.settings.dir, file);
    await rename(partial, path);
    this.entries.set(key, { key, file, size, lastUsed: this.tick() });
    await this.evict(key);
    await this.save();
    return path;
  }

  private tick(): number {
    this.clock = Math.max(Date.now(), this.clock + 1);
    return this.clock;
  }

  private async read(): Promise<void> {
    const { dir, log, timeoutMs } = this.settings;
    await mkdir(dir, { recursive: true });
    let saved: IndexEntry[] = [];
    try {
      const parsed = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as Partial<IndexFile>;
      if (parsed.version === 1 && Array.isArray(parsed.entries)) saved = parsed.entries;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') log(`LoRA cache index unreadable, starting empty: ${(error as Error).message}`);
    }
    for (const e of saved) {
      if (typeof e.key !== 'string' || typeof e.file !== 'string' || !ENTRY_FILE.test(e.file) || typeof e.lastUsed !== 'number') continue;
      if (e.file !== entryFile(e.key)) continue;
      try {
        const s = await stat(join(dir, e.file));
        if (s.size !== e.size) continue;
      } catch {
        continue;
      }
      this.entries.set(e.key, { key: e.key, file: e.file, size: e.size, lastUsed: e.lastUsed });
      this.clock = Math.max(this.clock, e.lastUsed);
    }
    const listed = new Set([...this.entries.values()].map((e) => e.file));
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (ENTRY_FILE.test(name) && !listed.has(name)) {
        await rm(path, { force: true });
      } else if (isPartialFile(name)) {
        const s = await stat(path).catch(() => undefined);
        if (s !== undefined && Date.now() - s.mtimeMs > timeoutMs) await rm(path, { force: true, recursive: true });
      }
    }
    if (saved.length !== this.entries.size) await this.save();
  }

  /** Writes the index atomically (temp file + rename), one write at a time. */
  private save(): Promise<void> {
    const write = async (): Promise<void> => {
      const data: IndexFile = { version: 1, entries: [...this.entries.values()].sort((a, b) => a.lastUsed - b.lastUsed) };
      const temp = partialPath(this.settings.dir, '.index.json');
      try {
        await writeFile(temp, `${JSON.stringify(data, null, 1)}\n`, { flag: 'wx' });
        await rename(temp, join(this.settings.dir, INDEX_FILE));
      } catch (error) {
        await rm(temp, { force: true });
        this.settings.log(`LoRA cache index not saved: ${(error as Error).message}`);
      }
    };
    this.writes = this.writes.then(write);
    return this.writes;
  }

  /**
   * Removes least recently used entries until the cache fits, sparing `added` and the entry the
   * previous fetch returned (the main LoRA while the extra one is added). Runs only when adding.
   */
  private async evict(added: string): Promise<void> {
    let total = [...this.entries.values()].reduce((sum, e) => sum + e.size, 0);
    const spared = new Set([added]);
    if (this.lastFetched !== undefined) spared.add(this.lastFetched);
    const oldestFirst = [...this.entries.values()].sort((a, b) => a.lastUsed - b.lastUsed);
    for (const entry of oldestFirst) {
      if (total <= this.settings.maxBytes) break;
      if (spared.has(entry.key)) continue;
      const path = join(this.settings.dir, entry.file);
      this.settings.log(`removing oldest ${path}`);
      await rm(path, { force: true });
      this.entries.delete(entry.key);
      total -= entry.size;
    }
    this.lastFetched = added;
  }
}
