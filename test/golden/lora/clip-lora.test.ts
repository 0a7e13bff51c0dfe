import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { combineLoras } from '../../../src/lora/apply.js';
import { NO_LOW_RANK } from '../../../src/models/common/low-rank.js';
import { ClipLoraTargets } from '../../../src/lora/flux-targets.js';
import { parseLora } from '../../../src/lora/formats.js';
import { ClipTextEncoder } from '../../../src/models/text/clip-text.js';
import { int64Tensor } from '../../../src/onnx/tensor-data.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/weights/safetensors-writer.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { randomFloats } from '../../helpers/random.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const worker = useWorker();
const tmp = useTempDir('clip-lora-');

const TARGETS = [
  { kohya: 'lora_te1_text_model_encoder_layers_0_self_attn_q_proj', weight: 'text_model.encoder.layers.0.self_attn.q_proj.weight', inF: 32, outF: 32 },
  { kohya: 'lora_te1_text_model_encoder_layers_1_mlp_fc2', weight: 'text_model.encoder.layers.1.mlp.fc2.weight', inF: 64, outF: 32 },
];
const [RANK, ALPHA, SCALE] = [2, 1, 0.8];

describe('CLIP text-encoder LoRAs', () => {
  it('apply a kohya lora_te1 file at run time exactly like merging it into the weights', async () => {
    const loraTensors: TensorToWrite[] = [];
    const deltas = new Map<string, Float32Array>();
    TARGETS.forEach((t, i) => {
      const down = randomFloats(RANK * t.inF, 700 + i, 0.5);
      const up = randomFloats(t.outF * RANK, 800 + i, 0.5);
      loraTensors.push(
        { name: `${t.kohya}.lora_down.weight`, dtype: 'F32', shape: [RANK, t.inF], data: down },
        { name: `${t.kohya}.lora_up.weight`, dtype: 'F32', shape: [t.outF, RANK], data: up },
        { name: `${t.kohya}.alpha`, dtype: 'F32', shape: [], data: Float32Array.of(ALPHA) },
      );
      const delta = new Float32Array(t.outF * t.inF);
      for (let o = 0; o < t.outF; o++) {
        for (let k = 0; k < t.inF; k++) {
          let s = 0;
          for (let r = 0; r < RANK; r++) s += (up[o * RANK + r] as number) * (down[r * t.inF + k] as number);
          delta[o * t.inF + k] = (SCALE * ALPHA * s) / RANK;
        }
      }
      deltas.set(t.weight, delta);
    });
    const loraPath = join(tmp(), 'te.safetensors');
    await writeSafetensors(loraPath, loraTensors);

    const base = await SafetensorsFile.open(goldenPath('clip_weights.safetensors'));
    const merged: TensorToWrite[] = [];
    for (const name of base.names()) {
      const data = await base.readFloat32(name);
      const delta = deltas.get(name);
      if (delta !== undefined) delta.forEach((d, i) => (data[i] = (data[i] as number) + d));
      merged.push({ name, dtype: 'F32', shape: base.info(name).shape, data });
    }
    const mergedPath = join(tmp(), 'clip-merged.safetensors');
    await writeSafetensors(mergedPath, merged, base.metadata);

    const cases = await SafetensorsFile.open(goldenPath('clip_cases.safetensors'));
    const ids = int64Tensor(cases.info('case0.input_ids').shape, await cases.readInt64('case0.input_ids'));
    const clip = await ClipTextEncoder.load(worker(), goldenPath('clip_weights.safetensors'));
    const lora = await parseLora(await SafetensorsFile.open(loraPath), 'te.safetensors');
    expect(lora.layers.every((l) => l.namespace === 'clip')).toBe(true);
    const { state, reports } = combineLoras(new ClipLoraTargets(clip.config), [{ lora, scale: SCALE }]);
    expect(reports[0]).toMatchObject({ matchedTensors: 6, unmatched: [] });
    await clip.setLowRank(state);
    const withLora = await clip.encode(ids);
    const reference = await (await ClipTextEncoder.load(worker(), mergedPath)).encode(ids);
    expectAllClose(withLora.pooled.data as Float32Array, reference.pooled.data as Float32Array, 1e-5, 1e-5, 'pooled');
    expectAllClose(withLora.lastHiddenState.data as Float32Array, reference.lastHiddenState.data as Float32Array, 1e-5, 1e-5, 'hidden');
    await clip.setLowRank(NO_LOW_RANK);
    expectAllClose((await clip.encode(ids)).pooled.data as Float32Array, await cases.readFloat32('case0.expected_pooler_output'), 1e-5, 1e-5, 'base');
    await clip.release();
  });

  it('reports transformer-only LoRAs as touching nothing in the text encoder', async () => {
    const clip = await ClipTextEncoder.load(worker(), goldenPath('clip_weights.safetensors'));
    const peft = await parseLora(await SafetensorsFile.open(goldenPath('lora_peft_r4.safetensors')), 'peft');
    const targets = new ClipLoraTargets(clip.config);
    expect(() => combineLoras(targets, [{ lora: peft, scale: 1 }])).toThrow(/no tensor applies to this CLIP text encoder/);
    const { state, reports } = combineLoras(targets, [{ lora: peft, scale: 1 }], { requireMatch: false });
    expect(state.updates.size).toBe(0);
    expect(reports[0]?.matchedTensors).toBe(0);
    await clip.release();
  });
});
