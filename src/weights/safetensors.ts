/**
 * safetensors reader: validates the header completely on open (reading only the header)
 * and reads single tensors on demand. Sharded checkpoints (`*.safetensors.index.json`)
 * behave as one TensorSource.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { open, readFile, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { bf16ToF32, DTYPE_BYTES, f16ToF32, f8e4m3fnToF32, f8e5m2ToF32, isSafetensorsDType, type SafetensorsDType } from './dtypes.js';

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    detail: string,
    readonly tensor?: string,
  ) {
    super(`${file}: ${tensor === undefined ? '' : `tensor "${tensor}": `}${detail}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute path of the file holding the data. */
  file: string;
  /** Absolute byte offset of the data in the file (8 + header length + data_offsets[0]). */
  offset: number;
  byteLength: number;
}

export interface TensorSource {
  readonly metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  readBytes(name: string): Promise<Uint8Array>;
  readFloat32(name: string): Promise<Float32Array>;
  readInt64(name: string): Promise<BigInt64Array>;
}

/** How a file whose framing is not safetensors at all is described first, before the detail (a corrupt or other kind of file). */
const NOT_SAFETENSORS = 'not a safetensors file';

/** Headers above this are refused (the reference implementation's cap). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function fsDetail(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a folder, not a file' : e.message;
}

function isSafeNonNegative(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseHeader(
  file: string,
  bytes: Uint8Array,
  dataLength: number,
): { tensors: Map<string, Omit<TensorInfo, 'file' | 'offset'> & { begin: number }>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new SafetensorsError(file, `${NOT_SAFETENSORS}: its header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new SafetensorsError(file, `${NOT_SAFETENSORS}: its header is not a JSON object`);
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, Omit<TensorInfo, 'file' | 'offset'> & { begin: number }>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new SafetensorsError(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__ value "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new SafetensorsError(file, 'entry is not an object', name);
    const { dtype, shape, data_offsets: offsets, ...rest } = entry as Record<string, unknown>;
    if (Object.keys(rest).length > 0) throw new SafetensorsError(file, `unknown field "${Object.keys(rest)[0]}"`, name);
    if (typeof dtype !== 'string' || !isSafetensorsDType(dtype)) throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(dtype)}`, name);
    if (!Array.isArray(shape) || !shape.every(isSafeNonNegative)) throw new SafetensorsError(file, `invalid shape ${JSON.stringify(shape)}`, name);
    const [begin, end] = Array.isArray(offsets) && offsets.length === 2 ? (offsets as unknown[]) : [];
    if (!isSafeNonNegative(begin) || !isSafeNonNegative(end) || begin > end) {
      throw new SafetensorsError(file, `invalid data_offsets ${JSON.stringify(offsets)}`, name);
    }
    const elements = (shape as number[]).reduce((s, d) => s * d, 1);
    const needed = elements * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(needed) || needed !== end - begin) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${shape.join(',')}] of ${dtype} needs ${needed}`,
        name,
      );
    }
    if (end > dataLength) throw new SafetensorsError(file, `data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes)`, name);
    tensors.set(name, { name, dtype, shape: shape as number[], byteLength: needed, begin });
  }
  // The tensors must tile the data region exactly: sorted by offset, contiguous from 0 to the end.
  const ordered = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.byteLength - b.byteLength);
  let cursor = 0;
  for (const t of ordered) {
    if (t.begin !== cursor) {
      throw new SafetensorsError(
        file,
        t.begin < cursor ? `data overlaps the previous tensor at byte ${t.begin}` : `gap in the data before byte ${t.begin}`,
        t.name,
      );
    }
    cursor = t.begin + t.byteLength;
  }
  if (cursor !== dataLength) throw new SafetensorsError(file, `tensors cover ${cursor} bytes but the file holds ${dataLength} bytes of data`);
  return { tensors, metadata };
}

async function readRange(file: string, tensor: string, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let handle;
  try {
    handle = await open(file, 'r');
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(out, done, Math.min(length - done, 1 << 30), offset + done);
      if (bytesRead === 0) throw new SafetensorsError(file, `file ends before the tensor's data (changed after it was opened?)`, tensor);
      done += bytesRead;
    }
  } catch (error) {
    if (error instanceof SafetensorsError) throw error;
    throw new SafetensorsError(file, `cannot read: ${fsDetail(error)}`, tensor);
  } finally {
    await handle?.close();
  }
  return out;
}

/**
 * Part of a tensor's data read synchronously into `target` (a worker thread's own buffer: nothing is
 * allocated): `target.byteLength` bytes from `offset` in `file`. Errors name the file and tensor.
 */
export class TensorFileReader {
  private readonly fd: number;

  constructor(
    readonly file: string,
    readonly tensor: string,
  ) {
    try {
      this.fd = openSync(file, 'r');
    } catch (error) {
      throw new SafetensorsError(file, `cannot read: ${fsDetail(error)}`, tensor);
    }
  }

  read(target: Uint8Array, offset: number): void {
    for (let done = 0; done < target.byteLength;) {
      let bytesRead: number;
      try {
        bytesRead = readSync(this.fd, target, done, Math.min(target.byteLength - done, 1 << 30), offset + done);
      } catch (error) {
        throw new SafetensorsError(this.file, `cannot read: ${fsDetail(error)}`, this.tensor);
      }
      if (bytesRead === 0) throw new SafetensorsError(this.file, `file ends before the tensor's data (changed after it was opened?)`, this.tensor);
      done += bytesRead;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Converts raw little-endian bytes of `dtype` to float32 (exactly for all float formats). */
export function bytesToFloat32(bytes: Uint8Array, dtype: SafetensorsDType, file: string, tensor: string): Float32Array {
  const count = bytes.byteLength / DTYPE_BYTES[dtype];
  // Copy into an aligned buffer so typed views are legal at any file offset.
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  const view = <T>(C: new (b: ArrayBufferLike, o: number, n: number) => T) => new C(aligned.buffer, aligned.byteOffset, count);
  switch (dtype) {
    case 'F32':
      return view(Float32Array);
    case 'F16':
      return f16ToF32(view(Uint16Array));
    case 'BF16':
      return bf16ToF32(view(Uint16Array));
    case 'F8_E4M3':
      return f8e4m3fnToF32(aligned);
    case 'F8_E5M2':
      return f8e5m2ToF32(aligned);
    case 'U8':
    case 'BOOL':
      return Float32Array.from(aligned);
    case 'I8':
      return Float32Array.from(view(Int8Array));
    case 'I16':
      return Float32Array.from(view(Int16Array));
    case 'I32':
      return Float32Array.from(view(Int32Array));
    case 'I64': {
      const values = view(BigInt64Array);
      return Float32Array.from(values, (v) => {
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new SafetensorsError(file, `I64 value ${v} does not fit a float exactly enough to read as float32`, tensor);
        }
        return Number(v);
      });
    }
  }
}

export class SafetensorsFile implements TensorSource {
  private constructor(
    readonly path: string,
    readonly metadata: Record<string, string>,
    private readonly tensors: Map<string, TensorInfo>,
  ) {}

  /** Opens and validates a file, reading only its header. */
  static async open(path: string): Promise<SafetensorsFile> {
    const file = resolve(path);
    let size: number;
    try {
      const s = await stat(file);
      if (s.isDirectory()) throw new SafetensorsError(file, 'is a folder, not a file');
      size = s.size;
    } catch (error) {
      if (error instanceof SafetensorsError) throw error;
      throw new SafetensorsError(file, fsDetail(error));
    }
    if (size < 8) throw new SafetensorsError(file, `${NOT_SAFETENSORS}: it is ${size} bytes, too short for a safetensors header`);
    const prefix = await readRange(file, '(header length)', 0, 8);
    const headerLength = new DataView(prefix.buffer).getBigUint64(0, true);
    if (headerLength > BigInt(MAX_HEADER_BYTES))
      throw new SafetensorsError(file, `${NOT_SAFETENSORS}: its first 8 bytes give a header length of ${headerLength}, above the ${MAX_HEADER_BYTES}-byte cap`);
    if (headerLength > BigInt(size - 8))
      throw new SafetensorsError(file, `${NOT_SAFETENSORS}: its first 8 bytes give a header length of ${headerLength}, past the end of the ${size}-byte file`);
    const n = Number(headerLength);
    if (n < 2) throw new SafetensorsError(file, `${NOT_SAFETENSORS}: its first 8 bytes give a header length of ${n}, too short for a JSON object`);
    const { tensors, metadata } = parseHeader(file, await readRange(file, '(header)', 8, n), size - 8 - n);
    const infos = new Map<string, TensorInfo>();
    for (const [name, t] of tensors) {
      infos.set(name, { name, dtype: t.dtype, shape: t.shape, file, offset: 8 + n + t.begin, byteLength: t.byteLength });
    }
    return new SafetensorsFile(file, metadata, infos);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) throw new SafetensorsError(this.path, 'no such tensor in this file', name);
    return info;
  }

  readBytes(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    return readRange(this.path, name, info.offset, info.byteLength);
  }

  async readFloat32(name: string): Promise<Float32Array> {
    return bytesToFloat32(await this.readBytes(name), this.info(name).dtype, this.path, name);
  }

  async readInt64(name: string): Promise<BigInt64Array> {
    const info = this.info(name);
    const bytes = await this.readBytes(name);
    const count = info.byteLength / DTYPE_BYTES[info.dtype];
    switch (info.dtype) {
      case 'I64':
        return new BigInt64Array(bytes.buffer, bytes.byteOffset, count);
      case 'I32':
        return BigInt64Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, count), (v) => BigInt(v));
      case 'I16':
        return BigInt64Array.from(new Int16Array(bytes.buffer, bytes.byteOffset, count), (v) => BigInt(v));
      case 'I8':
        return BigInt64Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, count), (v) => BigInt(v));
      case 'U8':
      case 'BOOL':
        return BigInt64Array.from(bytes, (v) => BigInt(v));
      default:
        throw new SafetensorsError(this.path, `is ${info.dtype}, not an integer type`, name);
    }
  }
}

/** Several shard files addressed through an index, behaving as one source. */
class ShardedSource implements TensorSource {
  constructor(
    readonly metadata: Record<string, string>,
    private readonly owner: Map<string, SafetensorsFile>,
  ) {}

  names(): string[] {
    return [...this.owner.keys()];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  private file(name: string): SafetensorsFile {
    const file = this.owner.get(name);
    if (file === undefined) throw new SafetensorsError('(sharded checkpoint)', 'no such tensor in the index', name);
    return file;
  }

  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.file(name).readBytes(name);
  }

  readFloat32(name: string): Promise<Float32Array> {
    return this.file(name).readFloat32(name);
  }

  readInt64(name: string): Promise<BigInt64Array> {
    return this.file(name).readInt64(name);
  }
}

async function openIndex(indexPath: string): Promise<TensorSource> {
  const index = resolve(indexPath);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(index, 'utf8'));
  } catch (error) {
    throw new SafetensorsError(index, `cannot read the index: ${error instanceof SyntaxError ? error.message : fsDetail(error)}`);
  }
  const weightMap = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) throw new SafetensorsError(index, 'index has no "weight_map" object');
  const folder = dirname(index);
  const shards = new Map<string, SafetensorsFile>();
  const owner = new Map<string, SafetensorsFile>();
  for (const [tensor, shardName] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shardName !== 'string') throw new SafetensorsError(index, 'shard name is not a string', tensor);
    const shardPath = resolve(folder, shardName);
    const rel = relative(folder, shardPath);
    if (rel.startsWith('..') || isAbsolute(rel)) throw new SafetensorsError(index, `shard "${shardName}" lies outside the index's folder`, tensor);
    let shard = shards.get(shardPath);
    if (shard === undefined) {
      shard = await SafetensorsFile.open(shardPath);
      shards.set(shardPath, shard);
    }
    if (!shard.has(tensor)) throw new SafetensorsError(index, `the index places it in "${shardName}", which does not hold it`, tensor);
    owner.set(tensor, shard);
  }
  for (const shard of shards.values()) {
    for (const name of shard.names()) {
      const listed = owner.get(name);
      if (listed === undefined) throw new SafetensorsError(shard.path, 'tensor is not listed in the index', name);
      if (listed !== shard) throw new SafetensorsError(index, `tensor is in two shards (${basename(listed.path)}, ${basename(shard.path)})`, name);
    }
  }
  const metadata: Record<string, string> = {};
  const rawMeta = (raw as { metadata?: unknown }).metadata;
  if (rawMeta !== null && typeof rawMeta === 'object') {
    for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) if (typeof v === 'string') metadata[k] = v;
  }
  return new ShardedSource(metadata, owner);
}

/**
 * Opens a `.safetensors` file, a `*.safetensors.index.json`, or a folder holding exactly one
 * index or exactly one safetensors file.
 */
export async function openTensorSource(path: string): Promise<TensorSource> {
  const target = resolve(path);
  let isFolder: boolean;
  try {
    isFolder = (await stat(target)).isDirectory();
  } catch (error) {
    throw new SafetensorsError(target, fsDetail(error));
  }
  if (!isFolder) return target.endsWith('.index.json') ? openIndex(target) : SafetensorsFile.open(target);
  const entries = await readdir(target);
  const indexes = entries.filter((e) => e.endsWith('.safetensors.index.json'));
  const files = entries.filter((e) => e.endsWith('.safetensors'));
  if (indexes.length === 1) return openIndex(join(target, indexes[0] as string));
  if (indexes.length === 0 && files.length === 1) return SafetensorsFile.open(join(target, files[0] as string));
  throw new SafetensorsError(
    target,
    `expected one *.safetensors.index.json or one .safetensors file in the folder, found ${indexes.length} index file(s) and ${files.length} safetensors file(s)`,
  );
}
