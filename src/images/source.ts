/** Reads an image input given as a data URI, an http(s) URL or (where allowed) a local file path. */
import { readFile, stat } from 'node:fs/promises';
import { FetchError, safeFetch, type SafeFetchOptions } from '../net/safe-fetch.js';
import { ImageInputError } from './errors.js';

export interface ImageSourceOptions {
  /** Largest accepted encoded size in bytes. */
  maxBytes: number;
  timeoutMs: number;
  /** Longest wait for a byte of a URL's answer (default: safe-fetch's, 30 s). */
  idleTimeoutMs?: number;
  allowPrivateNetworks?: boolean;
  /** Accept local file paths (the CLI does; a server must not let requests read its files). */
  allowLocalFiles?: boolean;
}

export const DEFAULT_IMAGE_SOURCE: ImageSourceOptions = { maxBytes: 50 * 1024 * 1024, timeoutMs: 30_000 };

/**
 * The octets of a percent-encoded data URI payload (RFC 2397: each `%XX` is one byte, other
 * characters stand for their UTF-8 bytes); a `%` not followed by two hex digits is an error.
 */
function percentDecode(input: string, payload: string): Buffer {
  if (/%(?![0-9a-f]{2})/i.test(payload)) throw new ImageInputError(input, 'malformed data URI: "%" must be followed by two hex digits');
  return Buffer.concat(payload.split(/(%[0-9a-f]{2})/i).map((part, i) => (i % 2 === 1 ? Buffer.of(parseInt(part.slice(1), 16)) : Buffer.from(part))));
}

function fromDataUri(input: string, value: string, maxBytes: number): Uint8Array {
  const m = /^data:([^,]*?)(;base64)?,(.*)$/s.exec(value);
  if (m === null) throw new ImageInputError(input, 'malformed data URI');
  const payload = m[3] as string;
  const bytes = m[2] ? Buffer.from(payload, 'base64') : percentDecode(input, payload);
  if (bytes.length > maxBytes) throw new ImageInputError(input, `data URI holds ${bytes.length} bytes, more than the ${maxBytes}-byte limit`);
  return bytes;
}

export async function readImageSource(input: string, value: string, options: ImageSourceOptions = DEFAULT_IMAGE_SOURCE): Promise<Uint8Array> {
  if (value.startsWith('data:')) return fromDataUri(input, value, options.maxBytes);
  if (/^https?:\/\//i.test(value)) {
    const fetchOptions: SafeFetchOptions = {
      maxBytes: options.maxBytes,
      timeoutMs: options.timeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      allowPrivateNetworks: options.allowPrivateNetworks,
    };
    try {
      return await safeFetch(value, fetchOptions);
    } catch (error) {
      if (error instanceof FetchError) throw new ImageInputError(input, `cannot download: ${error.message}`);
      throw error;
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || options.allowLocalFiles !== true) {
    throw new ImageInputError(input, `only data URIs${options.allowLocalFiles === true ? ', http(s) URLs and local files' : ' and http(s) URLs'} are accepted`);
  }
  try {
    const s = await stat(value);
    if (!s.isFile()) throw new ImageInputError(input, `${value} is not a file`);
    if (s.size > options.maxBytes) throw new ImageInputError(input, `${value} is ${s.size} bytes, more than the ${options.maxBytes}-byte limit`);
    return await readFile(value);
  } catch (error) {
    if (error instanceof ImageInputError) throw error;
    throw new ImageInputError(input, `cannot read ${value}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}
