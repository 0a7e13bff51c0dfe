/**
 * Quantizing a weight as stored (bf16, f16, f8 or f32 bytes), a slab of whole rows at a time (the
 * quantization pool's job, ./quantize-worker.ts). The rows come from memory or are read from the
 * weight's file straight into the slab, so a model's weights pass through no other buffer. 8-bit runs
 * the SIMD kernel, on bf16 and float32 bytes as stored and on other formats converted to float32 a slab
 * at a time; 4-bit converts to float32 a slab at a time and quantizes each slab as it goes.
 */
import { DTYPE_BYTES, type SafetensorsDType } from './dtypes.js';
import { checkQuantizeOptions, quantizeRowSlabs, type QuantizedWeight, type QuantizeOptions } from './quantize.js';
import { quantize8Simd } from './quantize-simd.js';
import { bytesToFloat32, SafetensorsError, TensorFileReader } from './safetensors.js';

/** `byteLength` bytes at `offset` of the weight's file. */
export interface FileRange {
  offset: number;
  byteLength: number;
}

/**
 * A weight as stored: little-endian bytes of `dtype`, in memory or where they lie in `file` (read by the
 * thread that quantizes it); `file` and `name` name it in errors.
 */
export interface StoredWeight {
  bytes: Uint8Array | FileRange;
  dtype: SafetensorsDType;
  file: string;
  name: string;
}

/**
 * Values converted to float32 at a time. Converting a whole linear at once allocated and first touched a
 * float32 array as large as the linear, which cost as much CPU as quantizing it (docs/onnxruntime.md §10.9).
 */
const SLAB_VALUES = 1 << 20;

/** Copies rows [first, first + target.byteLength / rowBytes) of the weight into `target`. */
type RowCopier = (target: Uint8Array, first: number) => void;

function withRows<T>({ bytes, file, name }: StoredWeight, rowBytes: number, use: (copy: RowCopier) => T): T {
  if (bytes instanceof Uint8Array) return use((target, first) => target.set(bytes.subarray(first * rowBytes, first * rowBytes + target.byteLength)));
  const reader = new TensorFileReader(file, name);
  try {
    return use((target, first) => reader.read(target, bytes.offset + first * rowBytes));
  } finally {
    reader.close();
  }
}

/** Quantizes a stored weight [n, k]; an error names its file and tensor. An 8-bit result lies in `spare` when it is large enough (quantize8Simd). */
export function quantizeStored(weight: StoredWeight, n: number, k: number, options: QuantizeOptions, spare?: ArrayBuffer): QuantizedWeight {
  checkQuantizeOptions(options);
  const { bytes, dtype, file, name } = weight;
  const rowBytes = k * DTYPE_BYTES[dtype];
  if (bytes.byteLength !== n * rowBytes) throw new SafetensorsError(file, `has ${bytes.byteLength} bytes, expected ${n}×${k} ${dtype} (${n * rowBytes})`, name);
  return withRows(weight, rowBytes, (copy) => {
    if (options.bits === 8 && (dtype === 'BF16' || dtype === 'F32')) return quantize8Simd(dtype, n, k, options.blockSize, copy, spare);
    const slabRows = Math.max(1, Math.floor(SLAB_VALUES / k));
    const raw = new Uint8Array(slabRows * rowBytes);
    const slab = (first: number, rows: number) => {
      const stored = raw.subarray(0, rows * rowBytes);
      copy(stored, first);
      return bytesToFloat32(stored, dtype, file, name);
    };
    if (options.bits === 4) return quantizeRowSlabs(slab, n, k, options, slabRows);
    return quantize8Simd(
      'F32',
      n,
      k,
      options.blockSize,
      (target, first) => {
        const values = slab(first, target.byteLength / (k * 4));
        target.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      },
      spare,
    );
  });
}
