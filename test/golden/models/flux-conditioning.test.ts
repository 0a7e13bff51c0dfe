import { describe, expect, it } from 'vitest';
import { embeddingArgument, roundBf16, ropeTables, timestepEmbedding } from '../../../src/models/flux/conditioning.js';
import { FLUX_DEV_CONFIG } from '../../../src/models/flux/config.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { goldenPath } from '../../helpers/golden.js';

describe('FLUX conditioning inputs', () => {
  it('rounds σ and guidance through bf16 like the references (docs/flux-math.md §7.2 G-T1, G-T2)', () => {
    expect([2.5, 3.0, 3.5, 4.0, 30].map((g) => embeddingArgument(g, true))).toEqual([2496, 3008, 3504, 4000, 29952]);
    expect(embeddingArgument(3.5, false)).toBe(3500);
    expect(roundBf16(1.00390625)).toBe(1); // tie to even
    expect(roundBf16(1.01171875)).toBe(1.015625);
    expect(roundBf16(Infinity)).toBe(Infinity);
    // BFL chain bf16(1000·bf16(σ)) for the first steps of the dev 1024² schedule
    const sigmas = [1, 0.988409, 0.976222, 0.963394, 0.949873, 0.935599, 0.920509, 0.904531];
    expect(sigmas.map((s) => embeddingArgument(s, true))).toEqual([1000, 988, 976, 964, 948, 936, 920, 908]);
  });

  // G-T3 was computed with correctly rounded frequencies; ours are PyTorch's float32 exp values
  // (test/golden/data/README.md §4.2), which differ by 1 ulp at some indices: ≤ 1000·ulp(ω) ≈ 6e-5 in the angle.
  it('matches the G-T3 embedding vectors', () => {
    const rows: [number, number[], number][] = [
      [1000, [0.562379, 0.789627, 0.439983, 0.994232, 0.82688, 0.613588, 0.107254], 50.96493],
      [3500, [0.964887, -0.67533, -0.723687, 0.9301, 0.262666, 0.737516, 0.367308], 29.72868],
      [3504, [-0.431906, 0.969206, 0.90501, 0.929942, -0.901919, -0.24625, 0.367707], 32.64669],
      [104.5, [-0.676761, -0.989564, -0.817978, 0.999937, -0.736203, 0.144095, 0.011229], 71.90216],
    ];
    for (const [t, picks, sum] of rows) {
      const e = timestepEmbedding([t], false);
      const got = [0, 1, 2, 127, 128, 129, 255].map((i) => e[i] as number);
      got.forEach((v, i) => expect(Math.abs(v - (picks[i] as number))).toBeLessThan(t * 7e-8 + 1e-6));
      expect(e.reduce((s, v) => s + v, 0)).toBeCloseTo(sum, 2);
    }
    expect(Array.from(timestepEmbedding([3504], true)).every((v) => roundBf16(v) === v)).toBe(true);
  });

  it('reproduces the golden timestep/guidance embeddings and RoPE tables', async () => {
    const file = await SafetensorsFile.open(goldenPath('transformer_A_cases.safetensors'));
    const read = (n: string) => file.readFloat32(`case0.${n}`);
    const t = embeddingArgument((await read('timestep'))[0] as number, false);
    const g = embeddingArgument((await read('guidance'))[0] as number, false);
    const maxDiff = (a: Float32Array, b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number))));
    expect(maxDiff(timestepEmbedding([t], false), await read('intermediate.timestep_proj'))).toBeLessThan(2e-7);
    expect(maxDiff(timestepEmbedding([g], false), await read('intermediate.guidance_proj'))).toBeLessThan(2e-7);
    const config = { ...FLUX_DEV_CONFIG, headDim: 16, axesDims: [4, 6, 6] };
    const [txt, img] = [await read('txt_ids'), await read('img_ids')];
    const ids = new Float32Array(txt.length + img.length);
    ids.set(txt);
    ids.set(img, txt.length);
    const { cos, sin } = ropeTables(config, ids, ids.length / 3);
    const [refCos, refSin] = [await read('intermediate.rope_cos'), await read('intermediate.rope_sin')];
    // The golden tables repeat each pair's value for both of its dims.
    expect(Array.from(refCos).every((v, i) => v === cos[i >> 1])).toBe(true);
    expect(Array.from(refSin).every((v, i) => v === sin[i >> 1])).toBe(true);
  });

  it('rotates a 128-wide head as in docs/flux-math.md §7.5 G-Q2', () => {
    const { cos, sin } = ropeTables(FLUX_DEV_CONFIG, Float32Array.of(0, 5, 7), 1);
    const x = Float32Array.from({ length: 128 }, (_, i) => i + 1);
    const out = new Float64Array(128);
    for (let k = 0; k < 64; k++) {
      out[2 * k] = (x[2 * k] as number) * (cos[k] as number) - (x[2 * k + 1] as number) * (sin[k] as number);
      out[2 * k + 1] = (x[2 * k] as number) * (sin[k] as number) + (x[2 * k + 1] as number) * (cos[k] as number);
    }
    const expected: [number, number][] = [
      [0, 1],
      [3, 4],
      [16, 22.082893],
      [17, -11.195793],
      [18, -8.229395],
      [19, -26.330154],
      [72, 6.417858],
      [73, 103.748795],
      [74, 95.988838],
      [75, -46.766911],
      [126, 126.875443],
      [127, 128.123459],
    ];
    for (const [i, v] of expected) expect(out[i]).toBeCloseTo(v, 4);
    expect(Math.hypot(...out)).toBeCloseTo(840.98987, 3);
  });
});
