/**
 * Reading the one `.safetensors` file out of a tar archive (plain, gzip or zstd), from bytes or a
 * file, without ever extracting by the archive's paths: the single matching entry is streamed into a
 * file the caller names, and every other entry is skipped. Archives with entry paths that escape
 * their folder (absolute, or with `..`) are refused as a whole.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';

export type ArchiveProblem = 'none' | 'multiple' | 'unsafe' | 'too-large' | 'invalid';

export class ArchiveError extends Error {
  constructor(
    readonly problem: ArchiveProblem,
    message: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface ExtractOptions {
  /** Names the archive in messages, as the reference does: `tarball` or `data URI`. */
  label: string;
  /** The largest `.safetensors` entry accepted. */
  maxBytes: number;
  signal?: AbortSignal;
}

export interface ExtractedEntry {
  /** The entry's path inside the archive (informational only; never used to write). */
  entry: string;
  bytes: number;
}

const REGULAR_FILE = new Set(['File', 'OldFile', 'ContiguousFile']);

/** Bytes handed to the parser at a time: at most 1000× that (4 MiB) is inflated in one go. */
const PIECE_BYTES = 4096;

async function* pieces(bytes: Buffer): AsyncGenerator<Buffer> {
  for (let start = 0; start < bytes.byteLength; start += PIECE_BYTES) yield bytes.subarray(start, start + PIECE_BYTES);
}

/** An entry path that would land outside the extraction folder if it were used. */
export function isUnsafeEntryPath(path: string): boolean {
  const normalized = path.replace(/\\/g, '/');
  if (normalized.startsWith('/') || /^[A-Za-z]:/.test(normalized)) return true;
  return normalized.split('/').includes('..');
}

/**
 * Streams the archive's only `.safetensors` entry (anywhere in it) into a new file `destPath`.
 * Throws ArchiveError when there is none, more than one, an unsafe path, an oversize entry or a
 * damaged archive. On failure `destPath` may exist partly written: the caller removes it.
 */
export async function extractSingleSafetensors(source: Uint8Array | { file: string }, destPath: string, options: ExtractOptions): Promise<ExtractedEntry> {
  const parser = new Parser({ strict: true });
  let found: ExtractedEntry | undefined;
  let out: WriteStream | undefined;
  let written: Promise<void> | undefined;
  let failure: Error | undefined;
  const fail = (error: Error): void => {
    if (failure !== undefined) return;
    failure = error;
    parser.abort(error);
  };

  const done = new Promise<void>((resolvePromise, reject) => {
    // Every way the parser stops (its own errors and aborts, e.g. its decompression-ratio guard
    // against archive bombs) is recorded as the failure, so the cleanup below closes the file
    // being written (else `written` would never settle and the extraction would hang).
    parser.on('error', (error: Error) => {
      failure ??= new ArchiveError('invalid', `Failed to read ${options.label}: ${error.message}`);
      reject(failure);
    });
    parser.on('end', () => (failure === undefined ? resolvePromise() : reject(failure)));
  });
  parser.on('entry', (entry: ReadEntry) => {
    if (failure !== undefined) return entry.resume();
    if (isUnsafeEntryPath(entry.path)) {
      entry.resume();
      return fail(new ArchiveError('unsafe', `${options.label} entry "${entry.path}" has an unsafe path (absolute or with ..); the archive is refused`));
    }
    if (!REGULAR_FILE.has(entry.type) || !posix.basename(entry.path.replace(/\\/g, '/')).endsWith('.safetensors')) return entry.resume();
    if (found !== undefined) {
      entry.resume();
      return fail(new ArchiveError('multiple', `Multiple .safetensors files found in ${options.label}: ${found.entry}, ${entry.path}`));
    }
    if (entry.size > options.maxBytes) {
      entry.resume();
      return fail(new ArchiveError('too-large', `${options.label} entry "${entry.path}" is ${entry.size} bytes, over the ${options.maxBytes}-byte limit`));
    }
    found = { entry: entry.path, bytes: entry.size };
    out = createWriteStream(destPath, { flags: 'wx' });
    entry.pipe(out);
    written = finished(out).catch((error: Error) => fail(new ArchiveError('invalid', `cannot write the extracted file: ${error.message}`)));
  });

  const onAbort = (): void => fail(new ArchiveError('invalid', `reading the ${options.label} was cancelled`));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (options.signal?.aborted) onAbort();
    // Fed in small pieces, each its own turn of the event loop: node-tar inflates each piece synchronously,
    // and a piece of a bomb inflates up to its ratio guard (1000×) before the guard can stop it.
    const stream =
      source instanceof Uint8Array
        ? Readable.from(pieces(Buffer.from(source.buffer, source.byteOffset, source.byteLength)))
        : createReadStream(source.file, { highWaterMark: PIECE_BYTES });
    stream.on('error', (error: Error) => fail(new ArchiveError('invalid', `cannot read ${options.label}: ${error.message}`)));
    parser.on('abort', () => stream.destroy());
    stream.pipe(parser as unknown as NodeJS.WritableStream);
    await done;
    await written;
    if (failure !== undefined) throw failure;
    if (found === undefined) throw new ArchiveError('none', `No .safetensors file found in ${options.label}`);
    return found;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    // On failure, the file being written is closed before the caller removes it (else an open
    // that completes after the removal would leave it behind).
    if (failure !== undefined) out?.destroy();
    await written;
  }
}
