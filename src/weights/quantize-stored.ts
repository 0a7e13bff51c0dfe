/**
 * Quantizing a weight as stored (bf16, f16, f8 or f32 bytes): converted to float32 a slab of whole rows
 * at a time, each slab quantized as it goes (the quantization pool's job, ./quantize-worker.ts).
 */
import { DTYPE_BYTES, type SafetensorsDType } from './dtypes.js';
import { quantizeRowSlabs, type QuantizedWeight, type QuantizeOptions } from './quantize.js';
import { bytesToFloat32 } from './safetensors.js';

/** A weight as stored: raw little-endian bytes of `dtype`; `file` and `name` name it in conversion errors. */
export interface StoredWeight {
  bytes: Uint8Array;
  dtype: SafetensorsDType;
  file: string;
  name: string;
}

/**
 * Values converted to float32 at a time. Converting a whole linear at once allocated and first touched a
 * float32 array as large as the linear, which cost as much CPU as quantizing it (docs/onnxruntime.md §10.9).
 */
const SLAB_VALUES = 1 << 20;

/** Converts a stored weight to float32 a slab of whole rows at a time, quantizing each slab as it goes. */
export function quantizeStored({ bytes, dtype, file, name }: StoredWeight, n: number, k: number, options: QuantizeOptions): QuantizedWeight {
  const rowBytes = k * DTYPE_BYTES[dtype];
  const slab = (first: number, rows: number) => bytesToFloat32(bytes.subarray(first * rowBytes, (first + rows) * rowBytes), dtype, file, name);
  return quantizeRowSlabs(slab, n, k, options, Math.max(1, Math.floor(SLAB_VALUES / k)));
}
