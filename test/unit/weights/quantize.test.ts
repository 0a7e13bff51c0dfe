import { describe, expect, it } from 'vitest';
import { bf16ToF32, f32ToBf16 } from '../../../src/weights/dtypes.js';
import { dequantizeBlockwise, quantizeBlockwise, quantizeRowSlabs } from '../../../src/weights/quantize.js';
import { quantizeStored } from '../../../src/weights/quantize-stored.js';
import { randomFloats } from '../../helpers/random.js';

describe('block quantization in MatMulNBits layout', () => {
  for (const bits of [4, 8] as const) {
    it(`${bits}-bit: every value within half a step of its block, K not a multiple of the block`, () => {
      const [n, k, blockSize] = [7, 100, 32];
      const w = randomFloats(n * k, bits, 2);
      for (let i = 0; i < k; i++) w[3 * k + i] = 0; // an all-zero row
      for (let i = 64; i < 96; i++) w[i] = 0.5; // a constant block
      const q = quantizeBlockwise(w, n, k, { bits, blockSize });
      const kBlocks = Math.ceil(k / blockSize);
      expect(q.data.length).toBe((n * kBlocks * blockSize * bits) / 8);
      expect(q.scales.length).toBe(n * kBlocks);
      expect(q.zeroPoints.length).toBe(n * Math.ceil((kBlocks * bits) / 8));
      const d = dequantizeBlockwise(q);
      for (let col = 0; col < n; col++) {
        for (let i = 0; i < k; i++) {
          const scale = q.scales[col * kBlocks + Math.floor(i / blockSize)] as number;
          expect(Math.abs((d[col * k + i] as number) - (w[col * k + i] as number))).toBeLessThanOrEqual(scale / 2 + 1e-6);
        }
      }
      expect(Array.from(d.subarray(3 * k, 4 * k)).every((v) => v === 0)).toBe(true);
      expect(Math.abs((d[70] as number) - 0.5)).toBeLessThanOrEqual((q.scales[2] as number) / 2);
    });
  }

  it('packs a hand-computed 4-bit example low nibble first', () => {
    // One column, K = 16 (one block): values 0..15 → scale 1, zero point 0, q = value.
    const w = Float32Array.from({ length: 16 }, (_, i) => i);
    const q = quantizeBlockwise(w, 1, 16, { bits: 4, blockSize: 16 });
    expect(Array.from(q.scales)).toEqual([1]);
    expect(Array.from(q.zeroPoints)).toEqual([0]);
    expect(Array.from(q.data)).toEqual([0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
    // Two blocks per column: zero points share a byte, block 0 in the low nibble.
    const w2 = Float32Array.from({ length: 32 }, (_, i) => (i < 16 ? i - 15 : i - 16));
    const q2 = quantizeBlockwise(w2, 1, 32, { bits: 4, blockSize: 16 });
    expect(Array.from(q2.zeroPoints)).toEqual([0x0f]);
    const q8 = quantizeBlockwise(w2, 1, 32, { bits: 8, blockSize: 16 });
    expect(Array.from(q8.zeroPoints)).toEqual([255, 0]);
    expect(q8.data[0]).toBe(0);
    expect(q8.data[31]).toBe(255);
    // 8-bit rounds ties to even: with scale 1 and zero point 0, 2.5 → 2 and 3.5 → 4.
    const ties = Float32Array.from({ length: 16 }, (_, i) => (i === 0 ? 255 : i === 1 ? 2.5 : i === 2 ? 3.5 : 0));
    expect(Array.from(quantizeBlockwise(ties, 1, 16, { bits: 8, blockSize: 16 }).data.subarray(0, 3))).toEqual([255, 2, 4]);
  });

  it('gives the same bytes a slab of rows at a time (3 rows, and rows from stored bf16) as the whole weight at once', () => {
    const [n, k] = [7, 100];
    const w = randomFloats(n * k, 9, 1);
    for (const bits of [4, 8] as const) {
      const whole = quantizeBlockwise(w, n, k, { bits, blockSize: 32 });
      expect(quantizeRowSlabs((first, rows) => w.slice(first * k, (first + rows) * k), n, k, { bits, blockSize: 32 }, 3)).toEqual(whole);
      const bf16 = f32ToBf16(w);
      const stored = { bytes: new Uint8Array(bf16.buffer), dtype: 'BF16' as const, file: 'test', name: 'w' };
      expect(quantizeStored(stored, n, k, { bits, blockSize: 32 })).toEqual(quantizeBlockwise(bf16ToF32(bf16), n, k, { bits, blockSize: 32 }));
    }
    expect(() => quantizeRowSlabs(() => new Float32Array(5), n, k, { bits: 8, blockSize: 32 }, 3)).toThrow('rows 0–2 have 5 values, expected 3×100');
  });

  it('rejects bad settings', () => {
    expect(() => quantizeBlockwise(new Float32Array(4), 2, 2, { bits: 8, blockSize: 24 })).toThrow(/power of two/);
    expect(() => quantizeBlockwise(new Float32Array(4), 2, 3, { bits: 8, blockSize: 16 })).toThrow(/expected 2×3/);
    expect(() => quantizeBlockwise(new Float32Array(4), 2, 2, { bits: 2 as 4, blockSize: 16 })).toThrow(/bits/);
  });
});
