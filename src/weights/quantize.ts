/**
 * Block quantization of Linear weights into the layout of onnxruntime's
 * com.microsoft::MatMulNBits (docs/onnxruntime.md §4):
 *   data        uint8 [N, kBlocks, blockSize·bits/8], each block along K, 4-bit values low nibble first;
 *   scales      float32 [N·kBlocks];
 *   zeroPoints  uint8, per column: 8-bit one per block [N·kBlocks], 4-bit two per byte [N·⌈kBlocks/2⌉].
 * Dequantized value = (q − zp)·scale. Asymmetric min/max per block with 0 representable;
 * values round to the nearest step (8-bit ties to even, 4-bit ties up), clamped to [0, 2^bits − 1].
 */

export interface QuantizedWeight {
  data: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array;
  bits: 4 | 8;
  blockSize: number;
  n: number;
  k: number;
}

export interface QuantizeOptions {
  bits: 4 | 8;
  /** A power of two ≥ 16. */
  blockSize: number;
}

/** Throws a RangeError for bits other than 4 or 8, or a block size that is not a power of two ≥ 16. */
export function checkQuantizeOptions({ bits, blockSize }: QuantizeOptions): void {
  if (bits !== 4 && bits !== 8) throw new RangeError(`bits must be 4 or 8, got ${bits}`);
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new RangeError(`block size must be a power of two ≥ 16, got ${blockSize}`);
}

/**
 * Quantizes a torch-layout weight [N, K] (out × in) row by row. The inner loops are specialized per
 * bit width (8-bit stores through a clamping view, 4-bit packs two values per byte), without calls
 * per value: 8-bit runs at ≈1.3 GB/s of float32 per CPU second, 1.7× the generic loop (docs/onnxruntime.md §10.7).
 * This is the reference the cache derivation's 8-bit SIMD kernel (./quantize-simd.ts) matches byte for byte.
 */
export function quantizeBlockwise(weight: Float32Array, n: number, k: number, options: QuantizeOptions): QuantizedWeight {
  if (weight.length !== n * k) throw new RangeError(`weight has ${weight.length} values, expected ${n}×${k}`);
  return quantizeRowSlabs((first, rows) => weight.subarray(first * k, (first + rows) * k), n, k, options, n);
}

/**
 * quantizeBlockwise over a weight that `slab(firstRow, rows)` supplies `rowsPerSlab` rows at a time (float32
 * [rows, K]), so the whole weight never has to exist in float32 at once: the pool converts stored bf16 this way.
 */
export function quantizeRowSlabs(
  slab: (firstRow: number, rows: number) => Float32Array,
  n: number,
  k: number,
  options: QuantizeOptions,
  rowsPerSlab: number,
): QuantizedWeight {
  checkQuantizeOptions(options);
  const { bits, blockSize } = options;
  const kBlocks = Math.ceil(k / blockSize);
  const blockBytes = (blockSize * bits) / 8;
  const maxQ = (1 << bits) - 1;
  const zpBytesPerColumn = Math.ceil((kBlocks * bits) / 8);
  const data = new Uint8Array(n * kBlocks * blockBytes);
  // Stores round to the nearest integer (ties to even) and clamp to [0, 255].
  const clamped = new Uint8ClampedArray(data.buffer);
  const scales = new Float32Array(n * kBlocks);
  const zeroPoints = new Uint8Array(n * zpBytesPerColumn);
  for (let first = 0; first < n; first += rowsPerSlab) {
    const rows = Math.min(rowsPerSlab, n - first);
    const weight = slab(first, rows);
    if (weight.length !== rows * k) throw new RangeError(`rows ${first}–${first + rows - 1} have ${weight.length} values, expected ${rows}×${k}`);
    for (let col = first; col < first + rows; col++) {
      const row = (col - first) * k;
      for (let b = 0; b < kBlocks; b++) {
        const start = row + b * blockSize;
        const end = Math.min(start + blockSize, row + k);
        let lo = 0;
        let hi = 0;
        for (let i = start; i < end; i++) {
          const v = weight[i] as number;
          lo = v < lo ? v : lo;
          hi = v > hi ? v : hi;
        }
        const scale = hi > lo ? Math.fround((hi - lo) / maxQ) : 1;
        const zp = Math.min(maxQ, Math.max(0, Math.round(-lo / scale)));
        const block = col * kBlocks + b;
        scales[block] = scale;
        const out = block * blockBytes;
        const count = end - start;
        if (bits === 8) {
          zeroPoints[block] = zp;
          // The clamping store also rounds (half to even): one division, one add, one store per value.
          for (let j = 0; j < count; j++) clamped[out + j] = (weight[start + j] as number) / scale + zp;
          // Padding beyond K (last block) encodes zero.
          data.fill(zp, out + count, out + blockSize);
        } else {
          const zpAt = col * zpBytesPerColumn + (b >> 1);
          zeroPoints[zpAt] = (zeroPoints[zpAt] as number) | (zp << ((b & 1) * 4));
          for (let j = 0; j < blockSize; j += 2) {
            const q0 = j < count ? Math.min(15, Math.max(0, Math.round((weight[start + j] as number) / scale) + zp)) : zp;
            const q1 = j + 1 < count ? Math.min(15, Math.max(0, Math.round((weight[start + j + 1] as number) / scale) + zp)) : zp;
            data[out + (j >> 1)] = q0 | (q1 << 4);
          }
        }
      }
    }
  }
  return { data, scales, zeroPoints, bits, blockSize, n, k };
}

/** The [N, K] float32 weight a quantized one stands for. */
export function dequantizeBlockwise(q: QuantizedWeight): Float32Array {
  const { n, k, bits, blockSize } = q;
  const kBlocks = Math.ceil(k / blockSize);
  const blockBytes = (blockSize * bits) / 8;
  const zpBytesPerColumn = Math.ceil((kBlocks * bits) / 8);
  const out = new Float32Array(n * k);
  for (let col = 0; col < n; col++) {
    for (let i = 0; i < k; i++) {
      const b = Math.floor(i / blockSize);
      const block = col * kBlocks + b;
      const j = i - b * blockSize;
      const qv = bits === 8 ? (q.data[block * blockBytes + j] as number) : ((q.data[block * blockBytes + (j >> 1)] as number) >> ((j & 1) * 4)) & 15;
      const zp = bits === 8 ? (q.zeroPoints[block] as number) : ((q.zeroPoints[col * zpBytesPerColumn + (b >> 1)] as number) >> ((b & 1) * 4)) & 15;
      out[col * k + i] = (qv - zp) * (q.scales[block] as number);
    }
  }
  return out;
}
