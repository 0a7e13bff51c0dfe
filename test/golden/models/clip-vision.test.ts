import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIP_VISION_OUTPUTS, ClipVisionModel } from '../../../src/models/safety/clip-vision.js';
import { float32Tensor, type TensorData } from '../../../src/onnx/tensor-data.js';
import { SafetyCheckpointError } from '../../../src/models/safety/checkpoint.js';
import { conceptDecisions } from '../../../src/models/safety/concepts.js';
import { SafetyInputError } from '../../../src/models/safety/processor.js';
import { writeSafetensors } from '../../../src/weights/safetensors-writer.js';
import { expectAllClose } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { goldenCases, goldenSafetyFolders, safetyGolden, tensor } from '../../helpers/golden-safety.js';

const worker = useWorker();
const tmp = useTempDir('clip-vision-');

describe('CLIP vision tower + projection (safety checker stage 1)', () => {
  it('matches the golden intermediates (≤ 1e-4), cosines and raw scores (≤ 2e-5), rounded scores (≤ 0.001) and flags (exact)', async () => {
    const { checker } = goldenSafetyFolders(join(tmp(), 'golden'));
    for (const layout of [join(tmp(), 'golden'), join(checker, 'model.safetensors')]) {
      const loaded = await ClipVisionModel.load(worker(), layout);
      expect(loaded.config.projectionDim, `pipeline root or file: ${layout}`).toBe(16);
      await loaded.release();
    }
    writeFileSync(join(checker, 'model.fp16.safetensors'), 'a variant beside the default weights file');
    const model = await ClipVisionModel.load(worker(), checker);
    expect(model.config).toEqual({
      hidden: 32,
      heads: 4,
      intermediate: 48,
      layers: 2,
      imageSize: 32,
      patchSize: 8,
      eps: 1e-5,
      activation: 'quick_gelu',
      qkvBias: true,
      projectionDim: 16,
    });
    const cases = await goldenCases('clip_cases.safetensors');
    const pixels = tensor(cases, 'pixel_values');
    const out = await model.run(float32Tensor(pixels.shape, Float32Array.from(pixels.values)), { intermediates: true });
    for (const name of CLIP_VISION_OUTPUTS) expectAllClose((out[name] as TensorData).data as Float32Array, tensor(cases, name).values, 1e-4, 0, name);
    const decisions = conceptDecisions(out.image_embeds as TensorData, model.concepts);
    const column = (pick: (d: (typeof decisions)[number]) => ArrayLike<number>) => decisions.flatMap((d) => Array.from(pick(d)));
    expectAllClose(
      column((d) => d.specialCos),
      tensor(cases, 'special_cos').values,
      2e-5,
      0,
      'special_cos',
    );
    expectAllClose(
      column((d) => d.conceptCos),
      tensor(cases, 'concept_cos').values,
      2e-5,
      0,
      'concept_cos',
    );
    expectAllClose(
      column((d) => d.specialRaw),
      tensor(cases, 'special_scores_raw').values,
      2e-5,
      0,
      'special_scores_raw',
    );
    expectAllClose(
      column((d) => d.conceptRaw),
      tensor(cases, 'concept_scores_raw').values,
      2e-5,
      0,
      'concept_scores_raw',
    );
    expectAllClose(
      column((d) => d.specialScores),
      tensor(cases, 'special_scores').values,
      0.001 + 1e-9,
      0,
      'special_scores',
    );
    expectAllClose(
      column((d) => d.conceptScores),
      tensor(cases, 'concept_scores').values,
      0.001 + 1e-9,
      0,
      'concept_scores',
    );
    expect(decisions.map((d) => Number(d.specialCare))).toEqual(Array.from(tensor(cases, 'special_care').values));
    expect(decisions.map((d) => d.adjustment)).toEqual(Array.from(tensor(cases, 'adjustment').values));
    expect(decisions.map((d) => Number(d.hasNsfw))).toEqual(Array.from(tensor(cases, 'has_nsfw').values));
    await expect(model.run(float32Tensor([1, 3, 16, 16], new Float32Array(768)))).rejects.toThrow(
      new SafetyInputError('input "pixel_values" must be float32 [batch, 3, 32, 32], got float32 [1, 3, 16, 16]'),
    );
    await model.release();
  });

  it('names the path and the problem for a missing, foreign or incomplete checkpoint', async () => {
    await expect(ClipVisionModel.load(worker(), join(tmp(), 'nowhere'))).rejects.toThrow(
      new SafetyCheckpointError(join(tmp(), 'nowhere'), 'no such file or folder (expected the safety checker (CLIP vision tower))'),
    );
    const vit = safetyGolden('falcon_vit.safetensors');
    await expect(ClipVisionModel.load(worker(), vit)).rejects.toThrow(
      `${vit}: not a safety checker (CLIP vision tower) checkpoint: "vision_model.vision_model.embeddings.class_embedding" is missing`,
    );
    const folder = join(tmp(), 'incomplete');
    mkdirSync(folder);
    copyFileSync(safetyGolden('safety_checker_config.json'), join(folder, 'config.json'));
    await writeSafetensors(join(folder, 'model.safetensors'), [
      { name: 'vision_model.vision_model.embeddings.class_embedding', dtype: 'F16', shape: [32], data: new Uint16Array(32) },
    ]);
    await expect(ClipVisionModel.load(worker(), folder)).rejects.toThrow(
      /incomplete: not a valid safety checker \(CLIP vision tower\) for its config: missing \d+ tensor\(s\): "vision_model.vision_model.embeddings.patch_embedding.weight"/,
    );
    writeFileSync(join(folder, 'config.json'), JSON.stringify({ vision_config: { hidden_size: 32, num_attention_heads: 5 } }));
    await expect(ClipVisionModel.load(worker(), folder)).rejects.toThrow(
      `${join(folder, 'config.json')}: invalid config: hidden_size 32 is not divisible by 5 heads`,
    );
  });
});
