/**
 * Streaming safetensors writer: the header is computed from declared dtypes and shapes,
 * tensor data is written chunk by chunk (a tensor never has to exist in memory at once),
 * into a temp file in the target folder that is renamed into place only when complete.
 */
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DTYPE_BYTES, type SafetensorsDType } from './dtypes.js';
import { SafetensorsError } from './safetensors.js';

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** The bytes, or a function producing them in chunks. */
  data: ArrayBufferView | (() => AsyncIterable<Uint8Array>);
}

function header(file: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> | undefined): { bytes: Uint8Array; sizes: number[] } {
  const entries: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) entries.__metadata__ = metadata;
  const sizes: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '' || t.name === '__metadata__') throw new SafetensorsError(file, 'invalid tensor name', t.name);
    if (Object.hasOwn(entries, t.name)) throw new SafetensorsError(file, 'duplicate tensor name', t.name);
    if (DTYPE_BYTES[t.dtype] === undefined) throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(t.dtype)}`, t.name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(file, `invalid shape ${JSON.stringify(t.shape)}`, t.name);
    const size = t.shape.reduce((s, d) => s * d, 1) * DTYPE_BYTES[t.dtype];
    entries[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    sizes.push(size);
    offset += size;
  }
  const json = Buffer.from(JSON.stringify(entries), 'utf8');
  // Pad with spaces so the data starts 8-byte aligned.
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const bytes = Buffer.alloc(8 + padded, 0x20);
  bytes.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(bytes, 8);
  return { bytes, sizes };
}

async function* chunks(data: TensorToWrite['data']): AsyncIterable<Uint8Array> {
  if (typeof data === 'function') {
    yield* data();
  } else {
    yield new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
}

export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const target = resolve(path);
  const { bytes, sizes } = header(target, tensors, metadata);
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${Date.now()}.tmp`);
  let handle;
  try {
    handle = await open(temp, 'wx');
    let position = 0;
    await handle.write(bytes, 0, bytes.length, position);
    position += bytes.length;
    for (const [i, t] of tensors.entries()) {
      let written = 0;
      for await (const chunk of chunks(t.data)) {
        written += chunk.byteLength;
        if (written > (sizes[i] as number)) break;
        await handle.write(chunk, 0, chunk.byteLength, position);
        position += chunk.byteLength;
      }
      if (written !== sizes[i]) {
        throw new SafetensorsError(
          target,
          `${t.dtype}[${t.shape.join(',')}] needs ${sizes[i]} bytes, got ${written}${written > (sizes[i] as number) ? ' or more' : ''}`,
          t.name,
        );
      }
    }
    await handle.close();
    handle = undefined;
    await rename(temp, target);
  } catch (error) {
    await handle?.close();
    await rm(temp, { force: true });
    if (error instanceof SafetensorsError) throw error;
    throw new SafetensorsError(target, `cannot write: ${(error as Error).message}`);
  }
}
