import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VIT_OUTPUTS, ViTClassifier } from '../../../src/models/safety/vit-classifier.js';
import { float32Tensor, type TensorData } from '../../../src/onnx/tensor-data.js';
import { expectAllClose } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { goldenCases, goldenSafetyFolders, safetyGolden, tensor } from '../../helpers/golden-safety.js';

const worker = useWorker();
const tmp = useTempDir('vit-classifier-');

describe('ViT image classifier (safety checker stage 2)', () => {
  it('matches the golden embeddings, last hidden state and logits (≤ 1e-4) and the argmax labels (exact)', async () => {
    const model = await ViTClassifier.load(worker(), goldenSafetyFolders(tmp()).classifier);
    const cases = await goldenCases('vit_cases.safetensors');
    const pixels = tensor(cases, 'pixel_values');
    const out = await model.run(float32Tensor(pixels.shape, Float32Array.from(pixels.values)), { intermediates: true });
    for (const name of VIT_OUTPUTS) expectAllClose((out[name] as TensorData).data as Float32Array, tensor(cases, name).values, 1e-4, 0, name);
    const predicted = model.argmax(out.logits as TensorData);
    expect(predicted).toEqual(Array.from(tensor(cases, 'predicted').values));
    expect(predicted.map((i) => model.label(i))).toEqual(['nsfw', 'normal', 'normal', 'normal']);
    expect(model.argmax(float32Tensor([2, 2], [0.5, 0.5, -1, 2]))).toEqual([0, 1]);
    await model.release();
  });

  it('needs id2label with a "normal" label, and names an output it leaves out', async () => {
    const folder = join(tmp(), 'labels');
    mkdirSync(folder);
    symlinkSync(safetyGolden('falcon_vit.safetensors'), join(folder, 'model.safetensors'));
    const config = (id2label: unknown) =>
      writeFileSync(
        join(folder, 'config.json'),
        JSON.stringify({ hidden_size: 32, intermediate_size: 56, num_attention_heads: 4, num_hidden_layers: 2, patch_size: 8, image_size: 32, id2label }),
      );
    config(undefined);
    await expect(ViTClassifier.load(worker(), folder)).rejects.toThrow('config.json: invalid config: "id2label" is missing');
    config({ 0: 'safe', 1: 'nsfw' });
    await expect(ViTClassifier.load(worker(), folder)).rejects.toThrow('"id2label" has no "normal" label, so no image could pass');
    config({ 0: 'normal', 2: 'nsfw' });
    await expect(ViTClassifier.load(worker(), folder)).rejects.toThrow(
      `${folder} (no preprocessor_config.json, so the processor's defaults): invalid image processor config: the model takes 32×32 pixels, but the processor makes 224×224`,
    );
    symlinkSync(safetyGolden('falcon_preprocessor_config.json'), join(folder, 'preprocessor_config.json'));
    const model = await ViTClassifier.load(worker(), folder);
    expect(() => model.label(1)).toThrow(
      `${join(folder, 'config.json')}: the classifier predicted output 1, which "id2label" does not name (it maps 0 "normal", 2 "nsfw")`,
    );
    await model.release();
    await expect(ViTClassifier.load(worker(), safetyGolden('falcon_vit.safetensors'))).rejects.toThrow(
      'the classifier needs its config.json (with "id2label") beside the weights',
    );
  });
});
