import { describe, expect, it } from 'vitest';
import { randn } from '../../../src/pipeline/noise.js';

describe('PyTorch-compatible CPU randn (docs/flux-math.md §7.3)', () => {
  it('G-R1: float32 path, seeds 0 and 42', () => {
    const seed0 = [-1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.692, -0.316, -2.1152, 0.3223, -1.2633, 0.35, 0.3081, 0.1198, 1.2377, 1.1168, -0.2473];
    const seed42 = [1.9269, 1.4873, 0.9007, -2.1055, 0.6784, -1.2345, -0.0431, -1.6047, -0.7521, 1.6487, -0.3925, -1.4036, -0.7279, -0.5594, -0.7688, 0.7624];
    Array.from(randn(0, 16, 'fp32')).forEach((v, i) => expect(v).toBeCloseTo(seed0[i] as number, 4));
    Array.from(randn(42, 16, 'fp32')).forEach((v, i) => expect(v).toBeCloseTo(seed42[i] as number, 4));
  });

  it('G-R2: bf16 with bf16-rounded intermediates (variant A), bit-exact', () => {
    expect(Array.from(randn(0, 16, 'bf16-rounded'))).toEqual([
      1.4609375, 0.291015625, 0.9609375, 1.5703125, 0.494140625, -1.515625, -0.25, 0.57421875, 0.326171875, -0.56640625, 0.54296875, -0.5625, 0.6015625, 2.375,
      1.671875, -0.8359375,
    ]);
    expect(Array.from(randn(42, 16, 'bf16-rounded'))).toEqual([
      -0.80859375, -1.53125, 0.40625, 0.171875, -0.2470703125, 0.2041015625, -0.87890625, -0.38671875, 0.6015625, 0.267578125, -0.8515625, -0.2890625, 1.0,
      -0.78125, 1.375, 0.11865234375,
    ]);
  });

  it('G-R2: bf16 with float32 arithmetic (variant B), bit-exact', () => {
    expect(Array.from(randn(0, 16, 'bf16-fp32'))).toEqual([
      1.453125, 0.287109375, 0.9609375, 1.5703125, 0.494140625, -1.5, -0.248046875, 0.5625, 0.326171875, -0.5703125, 0.54296875, -0.5625, 0.6015625, 2.375,
      1.671875, -0.84375,
    ]);
    expect(Array.from(randn(42, 16, 'bf16-fp32'))).toEqual([
      -0.80859375, -1.5234375, 0.404296875, 0.1728515625, -0.251953125, 0.1962890625, -0.87109375, -0.38671875, 0.6015625, 0.265625, -0.8515625, -0.287109375,
      1.0, -0.78125, 1.375, 0.1171875,
    ]);
  });

  it('has the bf16 path statistics and bounds (seed 0, 4096 samples)', () => {
    const x = randn(0, 4096);
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
    expect(mean).toBeCloseTo(0.0114, 3);
    expect(std).toBeCloseTo(0.9762, 3);
    expect([Math.min(...x), Math.max(...x), new Set(x).size]).toEqual([-3.21875, 3.25, 1296]);
    expect(() => randn(-1, 16)).toThrow(RangeError);
    expect(() => randn(0, 10)).toThrow(/multiple of 16/);
  });
});
