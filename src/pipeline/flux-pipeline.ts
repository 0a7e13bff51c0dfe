/**
 * The FLUX.1 pipeline: N images from a prompt's embeddings, in the numbered steps of diffusers'
 * FluxPipeline.__call__ with its img2img and inpaint variants folded in (docs/flux-math.md §4).
 * The server's predictor and `flux-lora eval pipeline` (the golden end-to-end cases) both run it.
 *
 * Models are asked for when a step needs them, never held across steps, so a residency pool
 * that has to release one model to load the next (T5 → transformer → VAE) can do so. Every
 * output is a batch of 1 whose starting noise comes from its own draw, so output i depends only
 * on its own seed (docs/decisions.md).
 */
import type { FluxTransformer } from '../models/flux/transformer.js';
import type { Vae } from '../models/vae/autoencoder.js';
import { vaeScaleFactor, type VaeConfig } from '../models/vae/config.js';
import { RunCancelledError } from '../onnx/errors.js';
import { float32Tensor, type TensorData } from '../onnx/tensor-data.js';
import { denoise, noisedLatents, type StepInfo } from './denoise.js';
import { cropImage, extendImage, extendMask, workingGrid } from './grid.js';
import { imageIds, pack, packedMask, posteriorLatent, unpack } from './latents.js';
import { img2imgStart, sigmas } from './schedule.js';

export interface TextConditioning {
  /** T5 hidden states [1, M, contextDim]. */
  t5: TensorData;
  /** CLIP pooled output [1, pooledDim]. */
  pooled: TensorData;
}

/** Where the pipeline gets its models; each is asked for when a step needs it. */
export interface PipelineModels {
  /** The VAE's config, known before the VAE loads (its scale factor and latent channels shape the latents). */
  vaeConfig: VaeConfig;
  vae(): Promise<Vae>;
  transformer(): Promise<FluxTransformer>;
  encodePrompt(): Promise<TextConditioning>;
}

/** The unpacked Gaussian draws of one output: `noise` starts the loop, `posterior` samples the input image's latent. */
export interface OutputNoise {
  noise: Float32Array;
  posterior?: Float32Array;
}

/**
 * The draws of output `index`, `count` values each; `posterior` is wanted in image modes.
 * The golden cases supply stored draws; the product draws them from seeds (see seededNoise).
 */
export type NoiseSource = (index: number, count: number, posterior: boolean) => OutputNoise;

export type PipelineStage = 'denoise' | 'decode';

export interface PipelineRequest {
  /** Image size in pixels (drawn on the covering grid of twice the VAE factor, then cropped: ./grid.ts). */
  width: number;
  height: number;
  numOutputs: number;
  steps: number;
  /** Guidance scale for guidance-distilled (dev) transformers; ignored by schnell. */
  guidance: number;
  /** img2img: the input image [1, 3, height, width] in [-1, 1]; inpainting adds a mask (row-major, 1 = repaint). */
  image?: { pixels: TensorData; strength: number; mask?: Uint8Array };
  noise: NoiseSource;
  onStep?(output: number, info: StepInfo): void;
  /** Wraps the pipeline's own work of each stage (e.g. to time it). */
  stage?<T>(stage: PipelineStage, work: () => Promise<T>): Promise<T>;
  signal?: AbortSignal;
}

export interface PipelineOutput {
  /** Packed normalized latents of the input image (image modes). */
  imageLatents?: Float32Array;
  /** The packed latents the loop started from. */
  initial: Float32Array;
  /** The packed final latents. */
  latents: Float32Array;
  /** The decoded image [1, 3, height, width] in about [-1, 1]. */
  image: TensorData;
}

export interface PipelineResult {
  sigmas: Float32Array;
  /** The first step taken (img2img's t_start; 0 for txt2img). */
  startIndex: number;
  /** The packed latent mask (inpainting). */
  mask?: Float32Array;
  outputs: PipelineOutput[];
}

/** The seed output `index` draws from: seed + index (mod 2³²), so it is the image that seed gives alone (docs/decisions.md). */
export function outputSeed(seed: number, index: number): number {
  return (seed + index) % 2 ** 32;
}

/** Output i draws from outputSeed(seed, i); image modes draw the posterior sample first, then the noise, from one generator as diffusers does. */
export function seededNoise(seed: number, draw: (seed: number, count: number) => Float32Array): NoiseSource {
  return (index, count, posterior) => {
    const draws = draw(outputSeed(seed, index), posterior ? 2 * count : count);
    return { noise: draws.subarray(draws.length - count), ...(posterior ? { posterior: draws.subarray(0, count) } : {}) };
  };
}

export async function runFluxPipeline(models: PipelineModels, request: PipelineRequest): Promise<PipelineResult> {
  const { signal } = request;
  const stage = request.stage ?? (<T>(_: PipelineStage, work: () => Promise<T>) => work());
  const checkCancelled = (before: string) => {
    if (signal?.aborted) throw new RunCancelledError(`the prediction (before ${before})`);
  };

  // 1. Latent geometry from the VAE's config (docs/flux-math.md §4.4), on the covering grid.
  const factor = vaeScaleFactor(models.vaeConfig);
  const channels = models.vaeConfig.latentChannels;
  const grid = workingGrid(request.width, request.height, 2 * factor);
  const [h, w] = [grid.height / factor, grid.width / factor];
  const count = channels * h * w;

  // 2. Image modes: the input image's posterior, once for every output (§4.8).
  let posterior: { mean: Float32Array; logvar: Float32Array } | undefined;
  if (request.image !== undefined) {
    const vae = await models.vae();
    const pixels = extendImage(request.image.pixels, grid);
    const moments = await stage('decode', () => vae.encode(pixels, { signal }));
    posterior = { mean: moments.mean.data as Float32Array, logvar: moments.logvar.data as Float32Array };
  }

  // 3. Prompt embeddings.
  const text = await models.encodePrompt();
  checkCancelled('denoising');

  // 4. Timesteps: the schedule for this resolution, and img2img's first step (§4.5, §4.8).
  const transformer = await models.transformer();
  const schedule = sigmas(request.steps, (h / 2) * (w / 2), transformer.config.guidanceEmbed ? 'dev' : 'schnell');
  const startIndex = request.image === undefined ? 0 : img2imgStart(request.steps, request.image.strength);
  const mask =
    request.image?.mask === undefined
      ? undefined
      : packedMask(extendMask(request.image.mask, request.width, request.height, grid), grid.width, grid.height, factor, channels);

  // 5–6. Per output: its starting latents, then the denoising loop (§4.3, §4.6, §4.9).
  const latents: Omit<PipelineOutput, 'image'>[] = [];
  const velocity = velocityOf(transformer, text, h, w, request.guidance);
  for (let i = 0; i < request.numOutputs; i++) {
    const draws = request.noise(i, count, posterior !== undefined);
    const noise = pack(draws.noise, 1, channels, h, w);
    const imageLatents =
      posterior === undefined
        ? undefined
        : pack(
            posteriorLatent(posterior.mean, posterior.logvar, draws.posterior ?? null, models.vaeConfig.shiftFactor, models.vaeConfig.scalingFactor),
            1,
            channels,
            h,
            w,
          );
    const initial = imageLatents === undefined ? noise : noisedLatents(imageLatents, noise, schedule[startIndex] as number);
    const final = await stage('denoise', () =>
      denoise(initial, {
        sigmas: schedule,
        startIndex,
        velocity,
        inpainting: mask === undefined || imageLatents === undefined ? undefined : { mask, imageLatents, noise },
        onStep: (info) => request.onStep?.(i, info),
        signal,
      }),
    );
    latents.push({ ...(imageLatents === undefined ? {} : { imageLatents }), initial, latents: final });
  }

  // 7. Decoding, after every output is denoised (so the transformer may be released first; §4.7).
  const vae = await models.vae();
  const outputs: PipelineOutput[] = [];
  for (const output of latents) {
    checkCancelled('decoding');
    const unpacked = float32Tensor([1, channels, h, w], unpack(output.latents, 1, channels, h, w));
    const decoded = await stage('decode', () => vae.decode(unpacked, { signal }));
    outputs.push({ ...output, image: cropImage(decoded, request.width, request.height) });
  }
  return { sigmas: schedule, startIndex, ...(mask === undefined ? {} : { mask }), outputs };
}

/** The transformer's velocity at latents x and noise level σ, with the positions of a latent grid h × w. */
function velocityOf(transformer: FluxTransformer, text: TextConditioning, h: number, w: number, guidanceScale: number) {
  const tokens = (h / 2) * (w / 2);
  const channels = transformer.config.inChannels;
  const imgIds = imageIds(h, w);
  const txtIds = new Float32Array((text.t5.dims[1] as number) * 3);
  const guidance = transformer.config.guidanceEmbed ? [guidanceScale] : undefined;
  return async (x: Float32Array, sigma: number, signal?: AbortSignal): Promise<Float32Array> => {
    const out = await transformer.forward(
      {
        hiddenStates: float32Tensor([1, tokens, channels], x),
        encoderHiddenStates: text.t5,
        pooledProjections: text.pooled,
        timestep: [sigma],
        guidance,
        imgIds,
        txtIds,
      },
      { signal },
    );
    return out.data as Float32Array;
  };
}
