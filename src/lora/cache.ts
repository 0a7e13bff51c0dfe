/**
 * The LoRA download cache (DECISIONS.md "LoRA download cache"): entries are keyed on the resolved
 * download URL (never on tokens), stored as `<sha256(key)[:32]>.safetensors`, listed in an index
 * file written atomically so that the LRU order survives restarts, and evicted least recently used
 * first when the folder grows past its size cap. A download goes to a temp file in the folder, is
 * verified as safetensors and only then renamed into place; concurrent requests share one download.
 *
 * One process owns a cache folder at a time: on start it removes files that its index does not
 * list and partial downloads older than the download time cap.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { FetchError, redact, safeDownload, safeDownloadBytes, type SafeDownloadOptions } from '../net/safe-fetch.js';
import { RunCancelledError } from '../onnx/errors.js';
import { SafetensorsError, SafetensorsFile } from '../weights/safetensors.js';
import { extractSingleSafetensors } from './archive.js';
import {
  civitaiDownloadUrl,
  civitaiModelUrl,
  DEFAULT_LORA_HOSTS,
  describeSource,
  huggingFaceFileUrl,
  huggingFaceListUrl,
  LoraSourceError,
  parseLoraSource,
  replicateWeightsUrl,
  type LoraHosts,
  type LoraSource,
} from './sources.js';

export { LoraSourceError, type LoraHosts } from './sources.js';

export interface LoraCacheOptions {
  /** Cache folder (created if missing). */
  dir: string;
  /** Total size cap in bytes, default 20 GiB; least recently used entries are evicted past it. */
  maxBytes?: number;
  /** Base URLs of the LoRA hosts (tests point these at local fake hosts). */
  hosts?: Partial<LoraHosts>;
  /** API tokens; each defaults to REPLICATE_API_TOKEN, HF_TOKEN, CIVITAI_TOKEN. */
  tokens?: { replicate?: string; huggingface?: string; civitai?: string };
  /** Allow loopback/private/link-local addresses (tests), default false. */
  allowPrivateNetworks?: boolean;
  /** The folder local paths must lie in; null/undefined refuses local paths. */
  localRoot?: string | null;
  /** Largest download accepted, default 8 GiB. */
  maxDownloadBytes?: number;
  /** Time cap per download, default 10 minutes. */
  timeoutMs?: number;
  /** Progress lines; never given token values. */
  log?: (line: string) => void;
}

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

/** How failures of one source are told: the reference's messages depend on the host. */
interface SourceTraits {
  format: 'safetensors' | 'tar' | 'data';
  /** The message for an HTTP 404. */
  notFound: string;
  /** Which token setting could help with a 401/403 ('' for none). */
  tokenHint: string;
  huggingFace: boolean;
}

/** What to fetch for one source, once any API look-up is done. */
interface Plan extends SourceTraits {
  key: string;
  /** The download URL (for `data`, the URI itself). */
  url: string;
  headers: Record<string, string>;
}

interface SharedDownload {
  promise: Promise<string>;
  controller: AbortController;
  waiters: number;
}

const GiB = 2 ** 30;
const INDEX_FILE = 'index.json';
const ENTRY_FILE = /^[0-9a-f]{32}\.safetensors$/;
const PARTIAL_PREFIX = '.partial-';
const API_MAX_BYTES = 32 * 2 ** 20;

const AUTH_FAILED = 'Authorization to download weights failed. Please check to see if an API key is needed and if so pass in with the URL.';
const NOT_FOUND = 'Weights not found at the supplied URL. Please check the URL.';
const CIVITAI_NOT_FOUND =
  'Model not found on CivitAI at that URL. Double check the CivitAI model ID; the id on the download link can be different than the id to browse to the model page.';

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function envToken(...names: string[]): string | undefined {
  for (const name of names) {
    const value = process.env[name];
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

function bearer(token: string | undefined): Record<string, string> {
  return token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` };
}

/** The URL without a `token` query parameter (cache keys never hold secrets). */
function withoutToken(url: string): string {
  const u = new URL(url);
  u.searchParams.delete('token');
  return u.href;
}

/** True when the bytes start like a safetensors file: a little-endian header length, then `{`. */
function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 10 || bytes[8] !== 0x7b) return false;
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return length <= BigInt(bytes.byteLength - 8);
}

function errorDetail(error: unknown): string {
  if (error instanceof SafetensorsError) return error.message.startsWith(`${error.file}: `) ? error.message.slice(error.file.length + 2) : error.message;
  return (error as Error).message;
}

type RemoteSource = Exclude<LoraSource, { kind: 'local' }>;

function sourceTraits(source: RemoteSource): SourceTraits {
  const plain = { notFound: NOT_FOUND, tokenHint: '', huggingFace: false };
  switch (source.kind) {
    case 'data':
      return { ...plain, format: 'data' };
    case 'url':
      return { ...plain, format: source.format };
    case 'replicate':
      return { ...plain, format: 'tar', tokenHint: 'REPLICATE_API_TOKEN' };
    case 'huggingface':
      return { ...plain, format: 'safetensors', tokenHint: 'HF_TOKEN', huggingFace: true };
    case 'civitai':
      return { format: 'safetensors', notFound: CIVITAI_NOT_FOUND, tokenHint: 'CIVITAI_TOKEN', huggingFace: false };
  }
}

export class LoraCache {
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly hosts: LoraHosts;
  private readonly tokens: { replicate?: string; huggingface?: string; civitai?: string };
  private readonly allowPrivateNetworks: boolean;
  private readonly localRoot: string | null;
  private readonly maxDownloadBytes: number;
  private readonly timeoutMs: number;
  private readonly log: (line: string) => void;

  private readonly entries = new Map<string, IndexEntry>();
  private readonly inflight = new Map<string, SharedDownload>();
  /** Look-ups already made in this process: HF repo → its one file, CivitAI model → newest version. */
  private readonly resolved = new Map<string, string>();
  private loaded: Promise<void> | undefined;
  private indexWrites: Promise<void> = Promise.resolve();
  private clock = 0;
  /** The entry the last fetch returned: never evicted, as a prediction may still be reading it. */
  private lastFetched: string | undefined;

  constructor(options: LoraCacheOptions) {
    this.dir = resolve(options.dir);
    this.maxBytes = options.maxBytes ?? 20 * GiB;
    this.hosts = { ...DEFAULT_LORA_HOSTS, ...options.hosts };
    this.tokens = {
      replicate: options.tokens?.replicate ?? envToken('REPLICATE_API_TOKEN'),
      huggingface: options.tokens?.huggingface ?? envToken('HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN'),
      civitai: options.tokens?.civitai ?? envToken('CIVITAI_TOKEN'),
    };
    this.allowPrivateNetworks = options.allowPrivateNetworks ?? false;
    this.localRoot = options.localRoot ?? null;
    this.maxDownloadBytes = options.maxDownloadBytes ?? 8 * GiB;
    this.timeoutMs = options.timeoutMs ?? 10 * 60_000;
    this.log = options.log ?? (() => undefined);
  }

  /**
   * A local, verified .safetensors path for the user's string `value` given for input `input`
   * (e.g. "replicate_weights"). Downloads at most once, even for concurrent calls. Throws
   * LoraSourceError naming the input, or RunCancelledError when `signal` aborts.
   */
  async fetch(input: string, value: string, signal?: AbortSignal): Promise<string> {
    const source = parseLoraSource(input, value);
    if (source.kind === 'local') return this.localFile(input, value, source.path);
    await this.load();
    const cancelled = (): RunCancelledError => new RunCancelledError(`the LoRA download for input "${input}"`);
    if (signal?.aborted) throw cancelled();
    const traits = sourceTraits(source);
    let plan: Plan;
    try {
      plan = await this.plan(source, traits, signal);
    } catch (error) {
      if (signal?.aborted) throw cancelled();
      throw this.failure(input, value, error, traits);
    }
    const cached = await this.lookup(plan.key);
    if (cached !== undefined) return cached;
    try {
      return await this.shared(plan.key, signal, (downloadSignal) => this.download(plan, downloadSignal));
    } catch (error) {
      if (signal?.aborted) throw cancelled();
      throw this.failure(input, value, error, traits);
    }
  }

  // ---- sources -----------------------------------------------------------------------------

  private fetchOptions(maxBytes: number, headers: Record<string, string>, signal: AbortSignal | undefined, timeoutMs = this.timeoutMs): SafeDownloadOptions {
    return { allowPrivateNetworks: this.allowPrivateNetworks, maxBytes, timeoutMs, headers, ...(signal === undefined ? {} : { signal }) };
  }

  private async getJson(url: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<unknown> {
    const body = await safeDownloadBytes(url, this.fetchOptions(API_MAX_BYTES, headers, signal, Math.min(this.timeoutMs, 120_000)));
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw new Error(`unexpected answer (not JSON) from ${redact(url)}`);
    }
  }

  private async plan(source: RemoteSource, traits: SourceTraits, signal: AbortSignal | undefined): Promise<Plan> {
    switch (source.kind) {
      case 'data':
        return { ...traits, key: `data:sha256:${sha256(source.uri)}`, url: source.uri, headers: {} };
      case 'url':
        return { ...traits, key: withoutToken(source.url), url: source.url, headers: {} };
      case 'replicate': {
        const url = replicateWeightsUrl(this.hosts, source.owner, source.name, source.version);
        return { ...traits, key: url, url, headers: bearer(this.tokens.replicate) };
      }
      case 'huggingface': {
        const headers = bearer(this.tokens.huggingface);
        const file = source.file ?? (await this.huggingFaceFile(source.owner, source.repo, source.revision, headers, signal));
        const url = huggingFaceFileUrl(this.hosts, source.owner, source.repo, source.revision, file);
        return { ...traits, key: url, url, headers };
      }
      case 'civitai': {
        const headers = bearer(this.tokens.civitai);
        const version = source.version ?? (await this.civitaiVersion(source.model as string, headers, signal));
        const key = civitaiDownloadUrl(this.hosts, version, source.query);
        const url = source.token === undefined ? key : `${key}${key.includes('?') ? '&' : '?'}token=${encodeURIComponent(source.token)}`;
        return { ...traits, key, url, headers };
      }
    }
  }

  /** The repo's one .safetensors file, through the HuggingFace API (the reference's rule and message). */
  private async huggingFaceFile(owner: string, repo: string, revision: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<string> {
    const memo = `hf:${owner}/${repo}@${revision}`;
    const known = this.resolved.get(memo);
    if (known !== undefined) return known;
    const listing = (await this.getJson(huggingFaceListUrl(this.hosts, owner, repo), headers, signal)) as { siblings?: { rfilename?: unknown }[] };
    if (!Array.isArray(listing.siblings)) throw new Error(`unexpected answer from the HuggingFace API for ${owner}/${repo} (no file list)`);
    const files = listing.siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string' && f.endsWith('.safetensors'));
    if (files.length !== 1 || files[0] === undefined) {
      throw new Error(
        `No *.safetensors file was explicitly specified from the HuggingFace repo ${owner}/${repo} and more than one *.safetensors file was found. Found: [${files.map((f) => `'${f}'`).join(', ')}]`,
      );
    }
    this.resolved.set(memo, files[0]);
    return files[0];
  }

  /** The model's newest version, through the CivitAI API. */
  private async civitaiVersion(model: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<string> {
    const memo = `civitai:${model}`;
    const known = this.resolved.get(memo);
    if (known !== undefined) return known;
    const answer = (await this.getJson(civitaiModelUrl(this.hosts, model), headers, signal)) as { modelVersions?: { id?: unknown }[] };
    const id = Array.isArray(answer.modelVersions) ? answer.modelVersions[0]?.id : undefined;
    if (typeof id !== 'number' && typeof id !== 'string') throw new Error(`CivitAI model ${model} has no downloadable version`);
    const version = String(id);
    if (!/^\d+$/.test(version)) throw new Error(`CivitAI model ${model} has an unexpected version id ${JSON.stringify(version)}`);
    this.resolved.set(memo, version);
    return version;
  }

  private async localFile(input: string, value: string, path: string): Promise<string> {
    const fail = (detail: string): never => {
      throw new LoraSourceError(input, `${describeSource(value)}: ${detail}`);
    };
    if (this.localRoot === null) return fail('local paths are not allowed on this server (the operator has not set a LoRA folder)');
    const root = resolve(this.localRoot);
    const inside = (base: string, target: string): boolean => {
      const rel = relative(base, target);
      return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
    };
    const candidate = resolve(root, path);
    if (!inside(root, candidate)) return fail('local paths must lie inside the server\'s LoRA folder');
    let real: string;
    let realRoot: string;
    try {
      realRoot = await realpath(root);
      real = await realpath(candidate);
    } catch {
      return fail('no such file in the server\'s LoRA folder');
    }
    if (!inside(realRoot, real)) return fail('local paths must lie inside the server\'s LoRA folder (this one links outside it)');
    try {
      await SafetensorsFile.open(real);
    } catch (error) {
      return fail(`is not a valid .safetensors file: ${errorDetail(error)}`);
    }
    return real;
  }

  // ---- downloading -------------------------------------------------------------------------

  /** Shares one download per key among concurrent callers; it is cancelled only when every caller has gone. */
  private async shared(key: string, signal: AbortSignal | undefined, start: (signal: AbortSignal) => Promise<string>): Promise<string> {
    let job = this.inflight.get(key);
    if (job === undefined) {
      const controller = new AbortController();
      const created: SharedDownload = { controller, waiters: 0, promise: Promise.resolve('') };
      created.promise = start(controller.signal).finally(() => {
        if (this.inflight.get(key) === created) this.inflight.delete(key);
      });
      created.promise.catch(() => undefined);
      this.inflight.set(key, created);
      job = created;
    }
    const current = job;
    current.waiters++;
    let onAbort: (() => void) | undefined;
    try {
      if (signal === undefined) return await current.promise;
      return await Promise.race([
        current.promise,
        new Promise<never>((_, reject) => {
          onAbort = () => reject(new RunCancelledError('the LoRA download'));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      current.waiters--;
      if (current.waiters === 0 && signal?.aborted) current.controller.abort();
    }
  }

  private partialPath(suffix: string): string {
    return join(this.dir, `${PARTIAL_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}${suffix}`);
  }

  private async download(plan: Plan, signal: AbortSignal): Promise<string> {
    const again = await this.lookup(plan.key);
    if (again !== undefined) return again;
    const started = performance.now();
    this.log('Downloading weights');
    this.log(`downloading weights from ${plan.format === 'data' ? 'data URI' : redact(plan.url)}`);
    const partial = this.partialPath('.safetensors');
    const archive = this.partialPath('.tar');
    try {
      const options = this.fetchOptions(this.maxDownloadBytes, plan.headers, signal);
      if (plan.format === 'safetensors') {
        await safeDownload(plan.url, partial, options);
      } else if (plan.format === 'tar') {
        await safeDownload(plan.url, archive, options);
        await extractSingleSafetensors({ file: archive }, partial, { label: 'tarball', maxBytes: this.maxDownloadBytes, signal });
      } else {
        const bytes = this.decodeDataUri(plan.url);
        if (looksLikeSafetensors(bytes)) await writeFile(partial, bytes, { flag: 'wx' });
        else await extractSingleSafetensors(bytes, partial, { label: 'data URI', maxBytes: this.maxDownloadBytes, signal });
      }
      try {
        await SafetensorsFile.open(partial);
      } catch (error) {
        throw new Error(`the downloaded file is not a valid .safetensors file: ${errorDetail(error)}`);
      }
      const size = (await stat(partial)).size;
      const file = `${sha256(plan.key).slice(0, 32)}.safetensors`;
      await rename(partial, join(this.dir, file));
      const entry: IndexEntry = { key: plan.key, file, size, lastUsed: this.tick() };
      this.entries.set(plan.key, entry);
      await this.evict(plan.key);
      await this.saveIndex();
      this.log(`Downloaded weights in ${((performance.now() - started) / 1000).toFixed(2)}s`);
      return join(this.dir, file);
    } finally {
      await rm(partial, { force: true });
      await rm(archive, { force: true });
    }
  }

  private decodeDataUri(uri: string): Buffer {
    const comma = uri.indexOf(',');
    if (comma < 0 || !/;base64$/i.test(uri.slice(0, comma))) throw new Error('a data URI must be base64 (data:<type>;base64,<data>)');
    const encoded = uri.length - comma - 1;
    if (Math.floor((encoded * 3) / 4) > this.maxDownloadBytes) throw new Error(`the data URI holds more than the ${this.maxDownloadBytes}-byte limit`);
    return Buffer.from(uri.slice(comma + 1), 'base64');
  }

  /** A failure as the LoraSourceError the user sees, with the reference's messages for HTTP answers. */
  private failure(input: string, value: string, error: unknown, traits: SourceTraits): Error {
    if (error instanceof LoraSourceError || error instanceof RunCancelledError) return error;
    let message: string;
    if (error instanceof FetchError && (error.status === 401 || error.status === 403)) {
      const hint = traits.tokenHint === '' ? '' : ` (Or set ${traits.tokenHint} on the server.)`;
      message = `${AUTH_FAILED}${hint} (HTTP ${error.status})`;
    } else if (error instanceof FetchError && error.status === 404) {
      message = traits.notFound;
    } else if (error instanceof FetchError) {
      message = `Failed to download ${traits.format === 'tar' ? 'tarball' : 'safetensors file'}: ${error.message}`;
    } else {
      message = errorDetail(error);
    }
    if (traits.huggingFace) message = `Failed to download from HuggingFace: ${message}`;
    return new LoraSourceError(input, `${describeSource(value)}: ${message}`);
  }

  // ---- index and eviction ------------------------------------------------------------------

  private tick(): number {
    this.clock = Math.max(Date.now(), this.clock + 1);
    return this.clock;
  }

  /** A cached entry's path (marking it used), or undefined when absent or gone from disk. */
  private async lookup(key: string): Promise<string | undefined> {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const path = join(this.dir, entry.file);
    try {
      await stat(path);
    } catch {
      this.entries.delete(key);
      await this.saveIndex();
      return undefined;
    }
    entry.lastUsed = this.tick();
    this.lastFetched = key;
    await this.saveIndex();
    return path;
  }

  private load(): Promise<void> {
    this.loaded ??= this.readIndex().catch((error: unknown) => {
      this.loaded = undefined;
      throw new Error(`the LoRA cache folder ${this.dir} cannot be used: ${(error as Error).message}`);
    });
    return this.loaded;
  }

  private async readIndex(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    let saved: IndexEntry[] = [];
    try {
      const parsed = JSON.parse(await readFile(join(this.dir, INDEX_FILE), 'utf8')) as Partial<IndexFile>;
      if (parsed.version === 1 && Array.isArray(parsed.entries)) saved = parsed.entries;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.log(`LoRA cache index unreadable, starting empty: ${(error as Error).message}`);
    }
    for (const e of saved) {
      if (typeof e.key !== 'string' || typeof e.file !== 'string' || !ENTRY_FILE.test(e.file) || typeof e.lastUsed !== 'number') continue;
      if (e.file !== `${sha256(e.key).slice(0, 32)}.safetensors`) continue;
      try {
        const s = await stat(join(this.dir, e.file));
        if (s.size !== e.size) continue;
      } catch {
        continue;
      }
      this.entries.set(e.key, { key: e.key, file: e.file, size: e.size, lastUsed: e.lastUsed });
      this.clock = Math.max(this.clock, e.lastUsed);
    }
    const listed = new Set([...this.entries.values()].map((e) => e.file));
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (ENTRY_FILE.test(name) && !listed.has(name)) {
        await rm(path, { force: true });
      } else if (name.startsWith(PARTIAL_PREFIX)) {
        const s = await stat(path).catch(() => undefined);
        if (s !== undefined && Date.now() - s.mtimeMs > this.timeoutMs) await rm(path, { force: true, recursive: true });
      }
    }
    if (saved.length !== this.entries.size) await this.saveIndex();
  }

  /** Writes the index atomically (temp file + rename), one write at a time. */
  private saveIndex(): Promise<void> {
    const write = async (): Promise<void> => {
      const data: IndexFile = { version: 1, entries: [...this.entries.values()].sort((a, b) => a.lastUsed - b.lastUsed) };
      const temp = this.partialPath('.index.json');
      try {
        await writeFile(temp, `${JSON.stringify(data, null, 1)}\n`, { flag: 'wx' });
        await rename(temp, join(this.dir, INDEX_FILE));
      } catch (error) {
        await rm(temp, { force: true });
        this.log(`LoRA cache index not saved: ${(error as Error).message}`);
      }
    };
    this.indexWrites = this.indexWrites.then(write);
    return this.indexWrites;
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
      if (total <= this.maxBytes) break;
      if (spared.has(entry.key)) continue;
      const path = join(this.dir, entry.file);
      this.log(`removing oldest ${path}`);
      await rm(path, { force: true });
      this.entries.delete(entry.key);
      total -= entry.size;
    }
    this.lastFetched = added;
  }
}
