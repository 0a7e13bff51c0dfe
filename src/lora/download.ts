/**
 * Downloading one LoRA into the cache folder: to a partial file that is verified as safetensors
 * before the caller stores it, with one download shared among concurrent requests for a key.
 */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { redact, safeDownload } from '../net/safe-fetch.js';
import { RunCancelledError } from '../onnx/errors.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import { extractSingleSafetensors } from './archive.js';
import { fetchOptions, type CacheSettings } from './cache-policy.js';
import { invalidSafetensorsDetail } from './source-errors.js';
import type { Plan } from './source-plan.js';

const PARTIAL_PREFIX = '.partial-';

/** A new, unique path for a file being written in `dir`, which `isPartialFile` recognises. */
export function partialPath(dir: string, suffix: string): string {
  return join(dir, `${PARTIAL_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}${suffix}`);
}

export function isPartialFile(name: string): boolean {
  return name.startsWith(PARTIAL_PREFIX);
}

/** True when the bytes start like a safetensors file: a little-endian header length, then `{`. */
function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 10 || bytes[8] !== 0x7b) return false;
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return length <= BigInt(bytes.byteLength - 8);
}

/** The bytes of a base64 data URI (parseLoraSource has checked its form). */
function decodeDataUri(uri: string, maxBytes: number): Buffer {
  const comma = uri.indexOf(',');
  const encoded = uri.length - comma - 1;
  if (Math.floor((encoded * 3) / 4) > maxBytes) throw new Error(`the data URI holds more than the ${maxBytes}-byte limit`);
  return Buffer.from(uri.slice(comma + 1), 'base64');
}

/**
 * Downloads `plan` to a partial file in the cache folder, checks that it is valid safetensors and
 * hands it to `store` (which moves it into place); the partial files are removed in any case.
 */
export async function downloadVerified<T>(plan: Plan, settings: CacheSettings, signal: AbortSignal, store: (partial: string) => Promise<T>): Promise<T> {
  const { dir, maxDownloadBytes, log } = settings;
  const started = performance.now();
  log('Downloading weights');
  log(`downloading weights from ${plan.format === 'data' ? 'data URI' : redact(plan.url)}`);
  const partial = partialPath(dir, '.safetensors');
  const archive = partialPath(dir, '.tar');
  try {
    const options = fetchOptions(settings, maxDownloadBytes, plan.headers, signal);
    if (plan.format === 'safetensors') {
      await safeDownload(plan.url, partial, options);
    } else if (plan.format === 'tar') {
      await safeDownload(plan.url, archive, options);
      await extractSingleSafetensors({ file: archive }, partial, { label: 'tarball', maxBytes: maxDownloadBytes, signal });
    } else {
      const bytes = decodeDataUri(plan.url, maxDownloadBytes);
      if (looksLikeSafetensors(bytes)) await writeFile(partial, bytes, { flag: 'wx' });
      else await extractSingleSafetensors(bytes, partial, { label: 'data URI', maxBytes: maxDownloadBytes, signal });
    }
    try {
      await SafetensorsFile.open(partial);
    } catch (error) {
      throw new Error(`the downloaded file is ${invalidSafetensorsDetail(error)}`);
    }
    const stored = await store(partial);
    log(`Downloaded weights in ${((performance.now() - started) / 1000).toFixed(2)}s`);
    return stored;
  } finally {
    await rm(partial, { force: true });
    await rm(archive, { force: true });
  }
}

interface SharedDownload {
  promise: Promise<string>;
  controller: AbortController;
  waiters: number;
}

/** The downloads under way, one per key, each shared by every caller that wants that key. */
export class SharedDownloads {
  private readonly inflight = new Map<string, SharedDownload>();

  /** Joins the download of `key`, starting it if needed; it is cancelled only when every caller has gone. */
  async join(key: string, signal: AbortSignal | undefined, start: (signal: AbortSignal) => Promise<string>): Promise<string> {
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
}
