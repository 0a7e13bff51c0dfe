import { describe, expect, it } from 'vitest';
import { positionBuckets, relativePositionBucket, T5Encoder } from '../../../src/models/text/t5-encoder.js';
import { TextEncoderInputError } from '../../../src/models/text/checkpoint.js';
import { int64Tensor } from '../../../src/onnx/tensor-data.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const worker = useWorker();
const tmp = useTempDir('t5-');

describe('T5 encoder', () => {
  it('buckets relative positions as docs/flux-math.md §7.6 G-B1 lists', () => {
    const b = (rel: number) => relativePositionBucket(rel, 32, 128);
    const runs: [number, number, number][] = [
      [0, 0, 0],
      [-7, -1, 1],
      [8, 11, 24],
      [12, 15, 25],
      [16, 22, 26],
      [23, 31, 27],
      [32, 45, 28],
      [46, 63, 29],
      [64, 90, 30],
      [91, 500, 31],
      [-11, -8, 8],
      [-15, -12, 9],
      [-22, -16, 10],
      [-31, -23, 11],
      [-45, -32, 12],
      [-63, -46, 13],
      [-90, -64, 14],
      [-500, -91, 15],
    ];
    for (const [from, to, bucket] of runs) {
      for (let rel = from; rel <= to; rel++) expect(b(rel) === bucket || (from === -7 && b(rel) === -rel), `rel ${rel}`).toBe(true);
    }
    for (let rel = 1; rel <= 7; rel++) expect(b(rel)).toBe(16 + rel);
    expect([b(16), b(45), b(46), b(90), b(91), b(-128)]).toEqual([26, 28, 29, 30, 31, 15]);
  });

  it('matches the golden cases and intermediates within atol 1e-5 + rtol 1e-5', async () => {
    const t5 = await T5Encoder.load(worker(), goldenPath('t5_weights.safetensors'));
    const cases = await SafetensorsFile.open(goldenPath('t5_cases.safetensors'));
    expect(t5.config).toMatchObject({ dModel: 32, heads: 4, dKv: 8, layers: 2, buckets: 32 });
    expect(positionBuckets(12, t5.config)).toEqual(await cases.readInt64('case0.intermediate.relative_position_bucket'));
    for (const k of [0, 1]) {
      const ids = int64Tensor(cases.info(`case${k}.input_ids`).shape, await cases.readInt64(`case${k}.input_ids`));
      const out = await t5.encode(ids);
      expect(out.dims).toEqual(cases.info(`case${k}.expected_last_hidden_state`).shape);
      expectAllClose(out.data as Float32Array, await cases.readFloat32(`case${k}.expected_last_hidden_state`), 1e-5, 1e-5, `case ${k}`);
    }
    await expect(t5.encode(int64Tensor([1, 2], [5, 100]))).rejects.toThrow(TextEncoderInputError);
    await expect(t5.encode(int64Tensor([1, 2], [5, 100]))).rejects.toThrow('input "input_ids" holds token 100, outside the vocabulary of 100');
    await t5.release();
  });

  it('the 8-bit forms stay close to exact (MatMulNBits linears, cached): int8 at accuracy level 4, int8-mapped at level 0', async () => {
    const cacheDir = tmp();
    const exact = await T5Encoder.load(worker(), goldenPath('t5_weights.safetensors'));
    const cases = await SafetensorsFile.open(goldenPath('t5_cases.safetensors'));
    const ids = int64Tensor(cases.info('case1.input_ids').shape, await cases.readInt64('case1.input_ids'));
    const reference = (await exact.encode(ids)).data as Float32Array;
    // Outputs are RMS-normalized (|x| ≤ 3.8). Measured on these random weights (T5 has no 1/√d, so its
    // softmax is sharp and sensitive to int8 activations): int8 max 0.16, mean 0.018; int8-mapped
    // (float32 activations) max 0.095, mean 0.011. int4 gave max 1.07, mean 0.16 (docs/onnxruntime.md §10.8).
    for (const [precision, maxBound, meanBound] of [
      ['int8', 0.3, 0.04],
      ['int8-mapped', 0.15, 0.02],
    ] as const) {
      const quantized = await T5Encoder.load(worker(), goldenPath('t5_weights.safetensors'), { precision, cacheDir });
      const out = (await quantized.encode(ids)).data as Float32Array;
      const diffs = reference.map((v, i) => Math.abs(v - (out[i] as number)));
      const [maxDiff, meanDiff] = [Math.max(...diffs), diffs.reduce((s, v) => s + v, 0) / diffs.length];
      expect(maxDiff, precision).toBeGreaterThan(0);
      expect(maxDiff, precision).toBeLessThan(maxBound);
      expect(meanDiff, precision).toBeLessThan(meanBound);
      await quantized.release();
    }
    await exact.release();
  });
});
