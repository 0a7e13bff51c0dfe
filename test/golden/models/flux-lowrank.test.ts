import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FluxTransformer, type LowRankState, type LowRankUpdate } from '../../../src/models/flux/transformer.js';
import { NO_LOW_RANK } from '../../../src/models/common/low-rank.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/weights/safetensors-writer.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { randomFloats } from '../../helpers/random.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { goldenCase } from '../../helpers/flux-cases.js';

const worker = useWorker();
const tmp = useTempDir('flux-lowrank-');

/** Three linears of config A, one of them a row range of the fused qkv, with their BFL storage. */
const TARGETS = [
  { linear: 'double_blocks.0.img_attn.k', key: 'double_blocks.0.img_attn.qkv.weight', rowStart: 32, inF: 32, outF: 32 },
  { linear: 'single_blocks.1.linear2', key: 'single_blocks.1.linear2.weight', rowStart: 0, inF: 160, outF: 32 },
  { linear: 'final_layer.adaLN_modulation.1.scale', key: 'final_layer.adaLN_modulation.1.weight', rowStart: 32, inF: 32, outF: 32 },
];

function updates(rank: number): LowRankState {
  const map = new Map<string, LowRankUpdate>(
    TARGETS.map((t, i) => [
      t.linear,
      { rank, down: randomFloats(t.inF * rank, 300 + i, 0.3), up: randomFloats(rank * t.outF, 400 + i, 0.3), bias: randomFloats(t.outF, 500 + i, 0.2) },
    ]),
  );
  return { updates: map, scales: [1] };
}

/** Writes config A (BFL) with W' = W + (down·up)ᵀ and b' = b + bias merged into each target's rows. */
async function mergedCheckpoint(state: LowRankState): Promise<string> {
  const lowRank = state.updates;
  const file = await SafetensorsFile.open(goldenPath('transformer_A_bfl.safetensors'));
  const tensors: TensorToWrite[] = [];
  for (const name of file.names()) {
    const info = file.info(name);
    const data = await file.readFloat32(name);
    for (const t of TARGETS.filter((x) => x.key.replace(/weight$/, 'bias') === name)) {
      const u = lowRank.get(t.linear) as LowRankUpdate;
      for (let o = 0; o < t.outF; o++) data[t.rowStart + o] = (data[t.rowStart + o] as number) + (u.bias?.[o] as number);
    }
    for (const t of TARGETS.filter((x) => x.key === name)) {
      const u = lowRank.get(t.linear) as LowRankUpdate;
      for (let o = 0; o < t.outF; o++) {
        for (let i = 0; i < t.inF; i++) {
          let delta = 0;
          for (let r = 0; r < u.rank; r++) delta += (u.up[o * u.rank + r] as number) * (u.down[r * t.inF + i] as number);
          data[(t.rowStart + o) * t.inF + i] = (data[(t.rowStart + o) * t.inF + i] as number) + delta;
        }
      }
    }
    tensors.push({ name, dtype: 'F32', shape: info.shape, data });
  }
  const path = join(tmp(), 'merged.safetensors');
  await writeSafetensors(path, tensors, file.metadata);
  return path;
}

describe('low-rank (LoRA) inputs on every linear', () => {
  it('equal merging the update into the weights, and rank 0 restores the base model, without rebuilding the session', async () => {
    const { inputs, expected } = await goldenCase('A', 0);
    const model = await FluxTransformer.load(worker(), goldenPath('transformer_A_bfl.safetensors'));
    const lowRank = updates(3);
    await model.setLowRank(lowRank);
    const withLora = (await model.forward(inputs)).data as Float32Array;
    const merged = await FluxTransformer.load(worker(), await mergedCheckpoint(lowRank));
    const reference = (await merged.forward(inputs)).data as Float32Array;
    await merged.release();
    expectAllClose(withLora, reference, 1e-5, 1e-5, 'runtime low-rank vs merged weights');
    expect(Math.max(...withLora.map((v, i) => Math.abs(v - (expected[i] as number))))).toBeGreaterThan(1e-2);
    // Strength 0 by rebinding only the strengths gives the base model back; 1 the LoRA again.
    await model.setLowRankScales([0]);
    expectAllClose((await model.forward(inputs)).data as Float32Array, expected, 1e-5, 1e-5, 'strength 0');
    await model.setLowRankScales([1]);
    expectAllClose((await model.forward(inputs)).data as Float32Array, withLora, 0, 0, 'strength 1 again');

    await model.setLowRank(updates(8));
    expect((await model.forward(inputs)).dims).toEqual(inputs.hiddenStates.dims);
    await model.setLowRank(NO_LOW_RANK);
    expectAllClose((await model.forward(inputs)).data as Float32Array, expected, 1e-5, 1e-5, 'rank 0');
    await model.release();
  });

  it('rejects updates for unknown linears or of the wrong size', async () => {
    const model = await FluxTransformer.load(worker(), goldenPath('transformer_B_bfl.safetensors'));
    const one = (name: string, update: LowRankUpdate): LowRankState => ({ updates: new Map([[name, update]]), scales: [1] });
    await expect(model.setLowRank(one('guidance_in.in_layer', { rank: 1, down: new Float32Array(256), up: new Float32Array(32) }))).rejects.toThrow(
      'low-rank update for unknown linear "guidance_in.in_layer"',
    );
    await expect(model.setLowRank(one('img_in', { rank: 2, down: new Float32Array(16), up: new Float32Array(64) }))).rejects.toThrow(
      'low-rank update for "img_in": down must be [2, 16] and up [32, 2]',
    );
    await expect(model.setLowRank(one('img_in', { rank: 1, down: new Float32Array(16), up: new Float32Array(32), slots: [1] }))).rejects.toThrow(
      'low-rank update for "img_in": needs a slot in 0..0 for each of its 1 rank columns',
    );
    await expect(model.setLowRankScales([NaN])).rejects.toThrow('LoRA strengths must be finite numbers');
    await model.release();
  });
});
