import { describe, expect, it } from 'vitest';
import { FluxTransformer } from '../../../src/models/flux/transformer.js';
import { evaluatePipelineCase } from '../../../src/eval/pipeline-eval.js';
import { float32Tensor, type TensorData } from '../../../src/onnx/tensor-data.js';
import { denoise } from '../../../src/pipeline/denoise.js';
import { imageIds, pack, unpack } from '../../../src/pipeline/latents.js';
import { img2imgStart, sigmas } from '../../../src/pipeline/schedule.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';

const worker = useWorker();
const TOL = 3e-5;

async function checkCase(name: string): Promise<Record<string, TensorData>> {
  const casePath = goldenPath(`${name}.safetensors`);
  const golden = await SafetensorsFile.open(casePath);
  const outputs = await evaluatePipelineCase(worker(), casePath, goldenPath('.'));
  const expected = ['steps.latents_after', 'expected_final_latents_packed', 'expected_final_latents_unpacked', 'expected_image'];
  if (golden.metadata.mode !== 'txt2img') expected.push('image_latents_packed', 'initial_latents_packed');
  if (golden.metadata.mode === 'inpaint') expected.push('mask_packed');
  expect(Object.keys(outputs).sort()).toEqual(expected.sort());
  // Every case stores the final latents and image; only txt2img stores the unpacked latents too.
  for (const key of expected.filter((k) => golden.has(k))) {
    const out = outputs[key] as TensorData;
    expect(out.dims, key).toEqual(golden.info(key).shape);
    expectAllClose(out.data as Float32Array, await golden.readFloat32(key), TOL, TOL, `${name} ${key}`);
  }
  expect(Array.from(sigmas(Number(golden.metadata.num_inference_steps), 384, 'dev'))).toEqual(
    (JSON.parse(golden.metadata.sigmas as string) as number[]).map(Math.fround),
  );
  return outputs;
}

describe('pipelines against the golden end-to-end runs', () => {
  it('txt2img: 6 dev steps, latents after every step, final latents and decoded image', async () => {
    const file = await SafetensorsFile.open(goldenPath('pipeline_txt2img.safetensors'));
    expect(Array.from(imageIds(32, 48))).toEqual(Array.from(await file.readFloat32('img_ids')));
    const noise = await file.readFloat32('noise');
    expect(Array.from(pack(noise, 1, 4, 32, 48))).toEqual(Array.from(await file.readFloat32('initial_latents_packed')));
    expect(Array.from(unpack(pack(noise, 1, 4, 32, 48), 1, 4, 32, 48))).toEqual(Array.from(noise));
    await checkCase('pipeline_txt2img');
  });

  it('img2img with the sampled posterior (diffusers) and with the posterior mean (BFL)', async () => {
    for (const name of ['pipeline_img2img', 'pipeline_img2img_posterior_mean']) {
      const outputs = await checkCase(name);
      const golden = await SafetensorsFile.open(goldenPath(`${name}.safetensors`));
      expect(img2imgStart(Number(golden.metadata.num_inference_steps), Number(golden.metadata.strength))).toBe(Number(golden.metadata.t_start));
      expect(outputs['steps.latents_after']?.dims[0]).toBe(Number(golden.metadata.num_inference_steps) - Number(golden.metadata.t_start));
    }
  });

  it('inpainting keeps the unmasked latents exactly', async () => {
    const outputs = await checkCase('pipeline_inpaint');
    const mask = outputs.mask_packed?.data as Float32Array;
    const pick = (key: string) => Array.from(outputs[key]?.data as Float32Array).filter((_, i) => mask[i] === 0);
    expect(pick('expected_final_latents_packed').length).toBeGreaterThan(0);
    expect(pick('expected_final_latents_packed')).toEqual(pick('image_latents_packed'));
  });
});

describe('denoising loop control', () => {
  it('stops between steps when cancelled, after the step in flight', async () => {
    const transformer = await FluxTransformer.load(worker(), goldenPath('transformer_B_bfl.safetensors'));
    const file = await SafetensorsFile.open(goldenPath('transformer_B_cases.safetensors'));
    const read = (n: string) => file.readFloat32(`case0.${n}`);
    const [context, pooled, imgIds, txtIds] = [
      await read('encoder_hidden_states'),
      await read('pooled_projections'),
      await read('img_ids'),
      await read('txt_ids'),
    ];
    const controller = new AbortController();
    const reported: number[] = [];
    const run = denoise(await read('hidden_states'), {
      sigmas: sigmas(8, 24, 'schnell'),
      signal: controller.signal,
      velocity: async (x, sigma, signal) =>
        (
          await transformer.forward(
            {
              hiddenStates: float32Tensor([1, 24, 16], x),
              encoderHiddenStates: float32Tensor([1, 7, 32], context),
              pooledProjections: float32Tensor([1, 24], pooled),
              timestep: [sigma],
              imgIds,
              txtIds,
            },
            { signal },
          )
        ).data as Float32Array,
      onStep: (info) => {
        reported.push(info.step);
        if (info.step === 2) controller.abort();
      },
    });
    await expect(run).rejects.toThrow('denoising (after 2 of 8 steps) cancelled');
    expect(reported).toEqual([1, 2]);
    await expect(denoise(new Float32Array(4), { sigmas: sigmas(2, 24, 'dev'), startIndex: 2, velocity: async (x) => x })).rejects.toThrow(RangeError);
    await transformer.release();
  });
});
