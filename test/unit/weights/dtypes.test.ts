import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, f8e4m3fnToF32, f8e5m2ToF32 } from '../../../src/weights/dtypes.js';

/** Independent formula decoder: (−1)^s · 2^(e−bias) · (1 + m/2^mb), subnormals 2^(1−bias) · m/2^mb. */
function formula(bits: number, eb: number, mb: number, special: 'ieee' | 'fn'): number {
  const s = Math.floor(bits / 2 ** (eb + mb)) % 2 === 1 ? -1 : 1;
  const e = Math.floor(bits / 2 ** mb) % 2 ** eb;
  const m = bits % 2 ** mb;
  const bias = 2 ** (eb - 1) - 1;
  if (special === 'ieee' && e === 2 ** eb - 1) return m === 0 ? s * Infinity : NaN;
  if (special === 'fn' && e === 2 ** eb - 1 && m === 2 ** mb - 1) return NaN;
  return e === 0 ? s * Math.pow(2, 1 - bias) * (m / 2 ** mb) : s * Math.pow(2, e - bias) * (1 + m / 2 ** mb);
}

const all16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
const all8 = Uint8Array.from({ length: 256 }, (_, i) => i);

function expectSame(actual: Float32Array, expected: (i: number) => number): void {
  for (let i = 0; i < actual.length; i++) {
    const e = expected(i);
    if (Number.isNaN(e)) expect(actual[i]).toBeNaN();
    else if (actual[i] !== Math.fround(e)) expect([i, actual[i]]).toEqual([i, Math.fround(e)]);
  }
}

describe('float format conversions', () => {
  it('decodes every f16 and bf16 bit pattern exactly', () => {
    expectSame(f16ToF32(all16), (i) => formula(i, 5, 10, 'ieee'));
    expectSame(bf16ToF32(all16), (i) => formula(i, 8, 7, 'ieee'));
  });

  it('decodes every float8 E4M3FN and E5M2 pattern', () => {
    expectSame(f8e4m3fnToF32(all8), (i) => formula(i, 4, 3, 'fn'));
    expectSame(f8e5m2ToF32(all8), (i) => formula(i, 5, 2, 'ieee'));
    expect(f8e4m3fnToF32(Uint8Array.of(0x7e, 0x08, 0x01))).toEqual(Float32Array.of(448, 2 ** -6, 2 ** -9));
  });

  it('rounds float32 to bf16 and f16 to nearest even, and round-trips exactly representable values', () => {
    const bf = (x: number) => bf16ToF32(f32ToBf16(Float32Array.of(x)))[0];
    expect(bf(1 + 2 ** -8)).toBe(1); // tie → even (down)
    expect(bf(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6); // tie → even (up)
    expect(bf(1 + 2 ** -8 + 2 ** -20)).toBe(1 + 2 ** -7);
    expect(bf(NaN)).toBeNaN();
    expect(bf(-Infinity)).toBe(-Infinity);
    const h = (x: number) => f16ToF32(f32ToF16(Float32Array.of(x)))[0];
    expect(h(1 + 2 ** -11)).toBe(1);
    expect(h(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
    expect(h(65520)).toBe(Infinity);
    expect(h(65519)).toBe(65504);
    expect(h(2 ** -25)).toBe(0); // tie at half the smallest subnormal → even (0)
    expect(h(3 * 2 ** -25)).toBe(2 ** -23);
    expect(h(NaN)).toBeNaN();
    const finite16 = f16ToF32(all16).filter((v) => Number.isFinite(v));
    expect(f16ToF32(f32ToF16(finite16))).toEqual(finite16);
    const finiteBf = bf16ToF32(all16).filter((v) => Number.isFinite(v));
    expect(bf16ToF32(f32ToBf16(finiteBf))).toEqual(finiteBf);
  });
});
