import { describe, expect, it } from 'vitest';
import { FluxTransformer } from '../../src/models/flux-transformer.js';
import { Vae } from '../../src/models/vae.js';
import { float32Tensor } from '../../src/onnx/tensor-data.js';
import { denoise, noisedLatents } from '../../src/pipeline/denoise.js';
import { imageIds, pack, packedMask, posteriorLatent, unpack } from '../../src/pipeline/latents.js';
import { img2imgStart, sigmas } from '../../src/pipeline/schedule.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../helpers/golden.js';
import { useWorker } from '../helpers/run-graph.js';

const worker = useWorker();
const TOL = 3e-5;

async function runPipeline(name: string) {
  const file = await SafetensorsFile.open(goldenPath(`${name}.safetensors`));
  const meta = file.metadata;
  const read = (n: string) => file.readFloat32(n);
  const transformer = await FluxTransformer.load(worker(), goldenPath(meta.transformer_file as string));
  const vae = await Vae.load(worker(), goldenPath(meta.vae_file as string));
  const [h, w] = JSON.parse(meta.latent_hw as string) as [number, number];
  const channels = vae.config.latentChannels;
  const steps = Number(meta.num_inference_steps);
  const schedule = sigmas(steps, (h / 2) * (w / 2), 'dev');
  expect(Array.from(schedule)).toEqual((JSON.parse(meta.sigmas as string) as number[]).map(Math.fround));
  const promptEmbeds = await read('prompt_embeds');
  const pooled = await read('pooled_prompt_embeds');
  const noise = pack(await read('noise'), 1, channels, h, w);
  const ids = imageIds(h, w);
  const textTokens = file.info('prompt_embeds').shape[1] as number;
  const velocities: Float32Array[] = [];
  const velocity = async (x: Float32Array, sigma: number) => {
    const out = await transformer.forward({
      hiddenStates: float32Tensor([1, noise.length / (channels * 4), channels * 4], x),
      encoderHiddenStates: float32Tensor([1, textTokens, promptEmbeds.length / textTokens], promptEmbeds),
      pooledProjections: float32Tensor([1, pooled.length], pooled),
      timestep: [sigma],
      guidance: [Number(meta.guidance_scale)],
      imgIds: ids,
      txtIds: new Float32Array(textTokens * 3),
    });
    velocities.push(out.data as Float32Array);
    return out.data as Float32Array;
  };
  let initial = noise;
  let start = 0;
  let inpainting;
  if (meta.mode !== 'txt2img') {
    start = img2imgStart(steps, Number(meta.strength));
    expect(start).toBe(Number(meta.t_start));
    const { mean, logvar } = await vae.encode(float32Tensor(file.info('vae_input_image').shape, await read('vae_input_image')));
    const x0 = pack(posteriorLatent(mean.data as Float32Array, logvar.data as Float32Array, await read('posterior_noise'), vae.config.shiftFactor, vae.config.scalingFactor), 1, channels, h, w);
    expectAllClose(x0, await read('image_latents_packed'), TOL, TOL, 'image latents');
    initial = noisedLatents(x0, noise, schedule[start] as number);
    expectAllClose(initial, await read('initial_latents_packed'), TOL, TOL, 'initial latents');
    if (meta.mode === 'inpaint') {
      const [, , H, W] = file.info('mask_image_01').shape as [number, number, number, number];
      const pixels = Uint8Array.from(await read('mask_image_01'), (v) => (v >= 0.5 ? 1 : 0));
      const mask = packedMask(pixels, W, H, vae.scaleFactor, channels);
      expect(Array.from(mask)).toEqual(Array.from(await read('mask_packed')));
      inpainting = { mask, imageLatents: x0, noise };
    }
  }
  const reported: number[] = [];
  const final = await denoise(initial, {
    sigmas: schedule,
    startIndex: start,
    velocity,
    inpainting,
    onStep: (info) => {
      reported.push(info.step);
      expect(info.total).toBe(steps - start);
    },
  });
  expect(reported).toEqual(Array.from({ length: steps - start }, (_, i) => i + 1));
  // Per-step velocities and latents, then the final latents and the decoded image.
  const goldenVelocity = await read('steps.velocity');
  velocities.forEach((v, i) => expectAllClose(v, goldenVelocity.subarray(i * v.length, (i + 1) * v.length), TOL, TOL, `velocity ${i}`));
  expectAllClose(final, await read('expected_final_latents_packed'), TOL, TOL, 'final latents');
  const image = await vae.decode(float32Tensor([1, channels, h, w], unpack(final, 1, channels, h, w)));
  expectAllClose(image.data as Float32Array, await read('expected_image'), TOL, TOL, 'image');
  await transformer.release();
  await vae.release();
  return { final, inpainting };
}

describe('pipelines against the golden end-to-end runs', () => {
  it('txt2img: 6 dev steps, per-step velocities, final latents and decoded image', async () => {
    const file = await SafetensorsFile.open(goldenPath('pipeline_txt2img.safetensors'));
    expect(Array.from(imageIds(32, 48))).toEqual(Array.from(await file.readFloat32('img_ids')));
    const noise = await file.readFloat32('noise');
    expect(Array.from(pack(noise, 1, 4, 32, 48))).toEqual(Array.from(await file.readFloat32('initial_latents_packed')));
    expect(Array.from(unpack(pack(noise, 1, 4, 32, 48), 1, 4, 32, 48))).toEqual(Array.from(noise));
    await runPipeline('pipeline_txt2img');
  });

  it('img2img with the sampled posterior (diffusers) and with the posterior mean (BFL)', async () => {
    await runPipeline('pipeline_img2img');
    await runPipeline('pipeline_img2img_posterior_mean');
  });

  it('inpainting keeps the unmasked latents exactly', async () => {
    const { final, inpainting } = await runPipeline('pipeline_inpaint');
    const keep = Array.from(final).filter((_, i) => inpainting?.mask[i] === 0);
    expect(keep.length).toBeGreaterThan(0);
    expect(keep).toEqual(Array.from(inpainting?.imageLatents ?? []).filter((_, i) => inpainting?.mask[i] === 0));
  });
});

describe('denoising loop control', () => {
  it('stops between steps when cancelled, after the step in flight', async () => {
    const transformer = await FluxTransformer.load(worker(), goldenPath('transformer_B_bfl.safetensors'));
    const file = await SafetensorsFile.open(goldenPath('transformer_B_cases.safetensors'));
    const read = (n: string) => file.readFloat32(`case0.${n}`);
    const [context, pooled, imgIds, txtIds] = [await read('encoder_hidden_states'), await read('pooled_projections'), await read('img_ids'), await read('txt_ids')];
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
