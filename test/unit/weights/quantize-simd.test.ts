import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../../src/weights/dtypes.js';
import { quantizeBlockwise, type QuantizedWeight } from '../../../src/weights/quantize.js';
import { quantizeStored } from '../../../src/weights/quantize-stored.js';
import { quantized8Bytes } from '../../../src/weights/quantize-simd.js';
import { QuantizePool } from '../../../src/weights/quantize-pool.js';
import type { SafetensorsDType } from '../../../src/weights/dtypes.js';
import { randomFloats } from '../../helpers/random.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const stored = (values: Uint16Array | Float32Array, dtype: SafetensorsDType) => ({
  bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  dtype,
  file: 'model.safetensors',
  name: 'blocks.0.linear.weight',
});

/** Byte-for-byte equality of two quantized weights (scales compared as bits, not as numbers). */
function expectSameBytes(actual: QuantizedWeight, expected: QuantizedWeight): void {
  expect({ ...actual, data: null, scales: null, zeroPoints: null }).toEqual({ ...expected, data: null, scales: null, zeroPoints: null });
  expect(Buffer.from(actual.data).equals(Buffer.from(expected.data))).toBe(true);
  const bits = (scales: Float32Array) => Buffer.from(scales.buffer, scales.byteOffset, scales.byteLength);
  expect(bits(actual.scales).equals(bits(expected.scales))).toBe(true);
  expect(Buffer.from(actual.zeroPoints).equals(Buffer.from(expected.zeroPoints))).toBe(true);
}

/** The SIMD kernel (quantizeStored, 8-bit) against the JavaScript quantizer on the same float32 values, from bf16 and float32 bytes. */
function expectKernelMatches(w: Float32Array, n: number, k: number, blockSize: number): void {
  const options = { bits: 8 as const, blockSize };
  const bf16 = f32ToBf16(w);
  expectSameBytes(quantizeStored(stored(bf16, 'BF16'), n, k, options), quantizeBlockwise(bf16ToF32(bf16), n, k, options));
  expectSameBytes(quantizeStored(stored(w, 'F32'), n, k, options), quantizeBlockwise(w, n, k, options));
}

/** Round half to even, as the 8-bit store does. */
const halfEven = (x: number) => {
  const f = Math.floor(x);
  return x - f !== 0.5 ? Math.round(x) : f % 2 === 0 ? f : f + 1;
};

describe('the 8-bit SIMD quantization kernel', () => {
  it('gives the JavaScript quantizer’s bytes on odd shapes: K not a multiple of the block or of 16, one value, more rows than one kernel call', () => {
    const shapes: [number, number, number][] = [
      [7, 100, 32],
      [3, 1, 16],
      [5, 17, 16],
      [4, 128, 128],
      [9, 2 * 128 + 15, 64],
      [1100, 300, 128],
    ];
    for (const [i, [n, k, blockSize]] of shapes.entries()) {
      const w = randomFloats(n * k, 40 + i, 3);
      w.fill(0, 0, k); // an all-zero row
      if (n > 2) w.fill(0.5, k, 2 * k); // a constant row
      if (n > 3) for (let j = 2 * k; j < 3 * k; j++) w[j] = Math.abs(w[j] as number); // no negative value
      expectKernelMatches(w, n, k, blockSize);
    }
  });

  it('gives the same bytes for NaN, infinities, −0, subnormals and extreme magnitudes', () => {
    const specials = [NaN, Infinity, -Infinity, -0, 1e-45, -1e-45, 1e-40, 3.4e38, -3.4e38, 1e-30, 65504, -2.5];
    const [n, k] = [specials.length, 40];
    const w = randomFloats(n * k, 5, 1);
    // Row r holds special r at positions in the vector part and the scalar tail of its blocks.
    specials.forEach((value, r) => [0, 5, 17, 33, 39].forEach((at) => (w[r * k + at] = value)));
    expectKernelMatches(w, n, k, 16);
    const tiny = Float32Array.from({ length: 2 * 32 }, (_, i) => (i % 3) * 1e-44);
    expectKernelMatches(tiny, 2, 32, 16);
  });

  it('rounds like float64 where the float32 quotient is exactly half an integer (the ties the kernel recomputes in float64)', () => {
    // bf16 values w in [0, hi] whose quotient w/scale rounds in float32 to m + ½ although it is not m + ½:
    // float32 rounding would give the other integer.
    const positive = bf16ToF32(Uint16Array.from({ length: 0x7f80 }, (_, i) => i));
    const rows: number[][] = [];
    for (const hi of [3, 5.5, 100]) {
      const scale = Math.fround(hi / 255);
      const ties = positive.filter((v) => v <= hi && Math.fround(v / scale) % 1 === 0.5 && v / scale !== Math.fround(v / scale));
      expect(ties.some((v) => halfEven(Math.fround(v / scale)) !== halfEven(v / scale))).toBe(true);
      // The block's maximum first, then the ties at every position of the vector part (16 at a time) and the scalar tail.
      rows.push(Array.from({ length: 19 }, (_, i) => (i === 0 || i === 16 ? hi : (ties[i % ties.length] as number))));
    }
    const w = Float32Array.from(rows.flat());
    expectKernelMatches(w, rows.length, 19, 16);
    // float32 sources: values one ulp around (m + ½)·scale.
    const scale = Math.fround(7 / 255);
    const near = Array.from({ length: 200 }, (_, m) => Math.fround((m + 0.5) * scale)).filter(
      (v) => Math.fround(v / scale) % 1 === 0.5 && v / scale !== Math.fround(v / scale),
    );
    expect(near.length).toBeGreaterThan(10);
    const f32 = Float32Array.from({ length: 64 }, (_, i) => (i % 32 === 0 ? 7 : (near[i % near.length] as number)));
    expectSameBytes(quantizeStored(stored(f32, 'F32'), 2, 32, { bits: 8, blockSize: 32 }), quantizeBlockwise(f32, 2, 32, { bits: 8, blockSize: 32 }));
  });

  it('quantizes a row range of a larger stored tensor at an odd byte offset, and other formats converted to float32 first', () => {
    const [n, k] = [6, 50];
    const fused = f32ToBf16(randomFloats(3 * n * k + 1, 9, 2));
    const bytes = new Uint8Array(fused.buffer).subarray(2 + n * k * 2, 2 + 2 * n * k * 2);
    const middle = { bytes, dtype: 'BF16' as const, file: 'model.safetensors', name: 'fused' };
    const expected = quantizeBlockwise(bf16ToF32(fused.slice(1 + n * k, 1 + 2 * n * k)), n, k, { bits: 8, blockSize: 16 });
    expectSameBytes(quantizeStored(middle, n, k, { bits: 8, blockSize: 16 }), expected);
    const w = randomFloats(n * k, 11, 4);
    const f16 = f32ToF16(w);
    expectSameBytes(
      quantizeStored(stored(f16, 'F16'), n, k, { bits: 8, blockSize: 16 }),
      quantizeStored(stored(f16ToF32(f16), 'F32'), n, k, { bits: 8, blockSize: 16 }),
    );
  });

  it('names the file and tensor when the stored bytes do not match the shape', () => {
    const w = new Float32Array(10);
    expect(() => quantizeStored(stored(w, 'F32'), 3, 4, { bits: 8, blockSize: 16 })).toThrow(
      'model.safetensors: tensor "blocks.0.linear.weight": has 40 bytes, expected 3×4 F32 (48)',
    );
    expect(() => quantizeStored(stored(w, 'F32'), 2, 5, { bits: 8, blockSize: 24 })).toThrow(/power of two/);
  });
});

describe('weights read from their file by the quantizing thread', () => {
  const tmp = useTempDir('quantize-stored-');

  it('reads a row range of a tensor at an odd offset slab by slab: the same bytes as from memory, 8-bit and 4-bit, bf16 and f16', () => {
    const [n, k] = [700, 600]; // more rows than one kernel call and one float32 slab
    for (const [dtype, encode] of [
      ['BF16', f32ToBf16],
      ['F16', f32ToF16],
    ] as const) {
      const tensor = encode(randomFloats(3 * n * k, 21, 2));
      const file = join(tmp(), `${dtype}.bin`);
      writeFileSync(file, Buffer.concat([Buffer.from('header'), Buffer.from(tensor.buffer)]));
      const rows = new Uint8Array(tensor.buffer).subarray(n * k * 2, 2 * n * k * 2);
      for (const bits of [8, 4] as const) {
        const options = { bits, blockSize: bits === 8 ? 128 : 64 };
        const fromFile = quantizeStored({ bytes: { offset: 6 + n * k * 2, byteLength: n * k * 2 }, dtype, file, name: 'fused' }, n, k, options);
        expectSameBytes(fromFile, quantizeStored({ bytes: rows, dtype, file, name: 'fused' }, n, k, options));
      }
    }
  });

  it('names the file and tensor when the file is missing or ends early', () => {
    const file = join(tmp(), 'short.bin');
    writeFileSync(file, Buffer.alloc(100));
    const weight = (path: string) => ({ bytes: { offset: 40, byteLength: 4 * 16 * 2 }, dtype: 'BF16' as const, file: path, name: 'blocks.1.w' });
    expect(() => quantizeStored(weight(file), 4, 16, { bits: 8, blockSize: 16 })).toThrow(`${file}: tensor "blocks.1.w": file ends before the tensor's data`);
    expect(() => quantizeStored(weight(join(tmp(), 'absent.bin')), 4, 16, { bits: 8, blockSize: 16 })).toThrow(
      /absent\.bin: tensor "blocks\.1\.w": cannot read: no such file/,
    );
  });
});

describe('results in recycled buffers', () => {
  const options = { bits: 8 as const, blockSize: 32 };

  it('an 8-bit result lies in a spare buffer large enough for it, with the same bytes; a smaller spare is left alone', () => {
    const w = randomFloats(40 * 96, 31, 1);
    const expected = quantizeBlockwise(w, 40, 96, options);
    const spare = new ArrayBuffer(quantized8Bytes(40, 96, 32) + 100);
    new Uint8Array(spare).fill(0xab); // stale bytes of an earlier result
    const inSpare = quantizeStored(stored(w, 'F32'), 40, 96, options, spare);
    expect([inSpare.data.buffer, inSpare.scales.buffer, inSpare.zeroPoints.buffer]).toEqual([spare, spare, spare]);
    expectSameBytes(inSpare, expected);
    const small = new ArrayBuffer(quantized8Bytes(40, 96, 32) - 1);
    const fresh = quantizeStored(stored(w, 'F32'), 40, 96, options, small);
    expect(fresh.data.buffer).not.toBe(small);
    expectSameBytes(fresh, expected);
  });

  it('the pool quantizes into a buffer given back by recycle, on its thread: the larger buffer comes back holding the right bytes', async () => {
    const pool = new QuantizePool(1);
    try {
      const big = await pool.quantize(stored(randomFloats(64 * 128, 32, 1), 'F32'), 64, 128, options);
      const bigBytes = big.data.buffer.byteLength;
      expect(bigBytes).toBe(quantized8Bytes(64, 128, 32));
      pool.recycle(big.data.buffer as ArrayBuffer);
      const w = randomFloats(16 * 64, 33, 1);
      const expected = quantizeBlockwise(w, 16, 64, options);
      const small = await pool.quantize(stored(w.slice(), 'F32'), 16, 64, options); // the pool takes the bytes it is given
      expect(small.data.buffer.byteLength).toBe(bigBytes);
      expectSameBytes(small, expected);
      const next = await pool.quantize(stored(w.slice(), 'F32'), 16, 64, options);
      expect(next.data.buffer.byteLength).toBe(quantized8Bytes(16, 64, 32));
    } finally {
      await pool.close();
    }
  });
});
