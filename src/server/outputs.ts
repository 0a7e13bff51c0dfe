/**
 * Where a prediction's output files go, as Cog and Replicate deliver them: data URIs (Cog's
 * default), URLs this server serves, raw-body PUTs under the operator's --upload-url (the URL
 * kept is the answer's Location, else the request URL, query stripped), or a multipart PUT
 * to the request's output_file_prefix (the output is exactly prefix + file name).
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { redact } from '../net/safe-fetch.js';

export type OutputTarget =
  | { kind: 'data-uri' }
  /** Served at `${base}/outputs/<key>/<name>`. */
  | { kind: 'served'; base: string }
  | { kind: 'upload'; url: string }
  | { kind: 'prefix'; prefix: string };

export interface OutputFile {
  path: string;
  /** Where the file was delivered; absent: rendered as a data URI. */
  url?: string;
}

const MIME_TYPES: Record<string, string> = { '.webp': 'image/webp', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg' };
const UPLOAD_TIMEOUT_MS = 25_000;
const UPLOAD_ATTEMPTS = 4;
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);

export function mimeType(name: string): string {
  return MIME_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

export class UploadError extends Error {
  constructor(name: string, url: string, detail: string) {
    super(`uploading ${name} to ${redact(url)} failed: ${detail}`);
    this.name = 'UploadError';
  }
}

/** PUTs `body` to `url`, retrying on 408/429/5xx and network errors with backoff; returns the answer. */
async function put(name: string, url: string, body: () => Uint8Array | FormData, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  let detail = '';
  for (let attempt = 0; attempt < UPLOAD_ATTEMPTS; attempt++) {
    if (attempt > 0) await sleep(250 * 2 ** attempt, undefined, { signal });
    try {
      const response = await fetch(url, { method: 'PUT', body: body(), headers, signal: AbortSignal.any([signal, AbortSignal.timeout(UPLOAD_TIMEOUT_MS)]) });
      await response.body?.cancel();
      if (response.ok) return response;
      detail = `HTTP ${response.status}`;
      if (!RETRYABLE.has(response.status)) break;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      detail = (error as Error).message;
    }
  }
  throw new UploadError(name, url, detail);
}

function withoutQuery(url: string): string {
  const u = new URL(url);
  u.search = '';
  return u.href;
}

async function deliverOne(path: string, target: OutputTarget, context: { id: string; key: string; signal: AbortSignal }): Promise<OutputFile> {
  const name = basename(path);
  switch (target.kind) {
    case 'data-uri':
      return { path };
    case 'served':
      return { path, url: `${target.base}/outputs/${context.key}/${name}` };
    case 'upload': {
      const url = new URL(`${context.id}/${name}`, target.url.endsWith('/') ? target.url : `${target.url}/`).href;
      const bytes = await readFile(path);
      const response = await put(name, url, () => bytes, { 'Content-Type': mimeType(name), 'X-Prediction-ID': context.id }, context.signal);
      const location = response.headers.get('location');
      return { path, url: withoutQuery(location === null ? response.url : new URL(location, url).href) };
    }
    case 'prefix': {
      const url = `${target.prefix}${name}`;
      const blob = new Blob([await readFile(path)], { type: mimeType(name) });
      const form = () => {
        const data = new FormData();
        data.set('file', blob, name);
        return data;
      };
      await put(name, url, form, {}, context.signal);
      return { path, url };
    }
  }
}

/** Delivers every output file; a failed upload fails the whole delivery. */
export async function deliverOutputs(files: string[], target: OutputTarget, context: { id: string; key: string; signal: AbortSignal }): Promise<OutputFile[]> {
  return Promise.all(files.map((file) => deliverOne(file, target, context)));
}
