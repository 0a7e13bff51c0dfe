/**
 * Quantizing a weight as stored (bf16, f16, f8 or f32 bytes), a slab of whole rows at a time (the
 * quantization pool's job, ./quantize-worker.ts). 8-bit runs the SIMD kernel, on bf16 and float32
 * bytes as stored and on other formats converted to float32 a slab at a time; 4-bit converts to
 * float32 a slab at a time and quantizes each slab as it goes.
 */
import { DTYPE_BYTES, type SafetensorsDType } from './dtypes.js';
import { checkQuantizeOptions, quantizeRowSlabs, type QuantizedWeight, type QuantizeOptions } from './quantize.js';
import { quantize8Simd } from './quantize-simd.js';
import { bytesToFloat32, SafetensorsError } from './safetensors.js';

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

/** Quantizes a stored weight [n, k]; an error names its file and tensor. */
export function quantizeStored({ bytes, dtype, file, name }: StoredWeight, n: number, k: number, options: QuantizeOptions): QuantizedWeight {
  checkQuantizeOptions(options);
  const rowBytes = k * DTYPE_BYTES[dtype];
  if (bytes.byteLength !== n * rowBytes) throw new SafetensorsError(file, `has ${bytes.byteLength} bytes, expected ${n}×${k} ${dtype} (${n * rowBytes})`, name);
  const rows = (first: number, count: number) => bytes.subarray(first * rowBytes, (first + count) * rowBytes);
  const slab = (first: number, count: number) => bytesToFloat32(rows(first, count), dtype, file, name);
  if (options.bits === 4) return quantizeRowSlabs(slab, n, k, options, Math.max(1, Math.floor(SLAB_VALUES / k)));
  if (dtype === 'BF16' || dtype === 'F32') return quantize8Simd(dtype, n, k, options.blockSize, rows);
  return quantize8Simd('F32', n, k, options.blockSize, (first, count) => {
    const values = slab(first, count);
    return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  });
}
