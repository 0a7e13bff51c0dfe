/**
 * One image's latents from its text conditioning: txt2img starts from noise; img2img and
 * inpainting start from the image latents noised to σ[t_start] (flux-math.md §4.8) and
 * inpainting blends the kept region back after every step (§4.9). Batch 1 per call, so an
 * output depends only on its own seed.
 */
import type { FluxTransformer } from '../models/flux-transformer.js';
import { float32Tensor, type TensorData } from '../onnx/tensor-data.js';
import { denoise, noisedLatents, type StepInfo } from './denoise.js';
import { imageIds } from './latents.js';

export interface TextConditioning {
  /** T5 hidden states [1, M, contextDim]. */
  t5: TensorData;
  /** CLIP pooled output [1, pooledDim]. */
  pooled: TensorData;
}

export interface ImageStart {
  /** Packed normalized image latents x₀. */
  imageLatents: Float32Array;
  /** First step (img2imgStart). */
  startIndex: number;
  /** Packed latent mask (1 = repaint) for inpainting. */
  mask?: Float32Array;
}

export interface LatentRequest {
  transformer: FluxTransformer;
  text: TextConditioning;
  /** Latent grid (before packing): the image size divided by the VAE factor. */
  latentHeight: number;
  latentWidth: number;
  sigmas: Float32Array;
  /** Guidance scale for guidance-distilled (dev) transformers; ignored otherwise. */
  guidance: number;
  /** Packed initial noise. */
  noise: Float32Array;
  image?: ImageStart;
  onStep?(info: StepInfo): void;
  signal?: AbortSignal;
}

/** The final packed latents of one image. */
export async function generateLatents(request: LatentRequest): Promise<Float32Array> {
  const { transformer, text, latentHeight: h, latentWidth: w, noise, image } = request;
  const tokens = (h / 2) * (w / 2);
  const channels = transformer.config.inChannels;
  if (noise.length !== tokens * channels) throw new RangeError(`noise must hold ${tokens}×${channels} packed values, got ${noise.length}`);
  const textTokens = text.t5.dims[1] as number;
  const imgIds = imageIds(h, w);
  const txtIds = new Float32Array(textTokens * 3);
  const guidance = transformer.config.guidanceEmbed ? [request.guidance] : undefined;
  const velocity = async (x: Float32Array, sigma: number, signal?: AbortSignal) => {
    const out = await transformer.forward(
      { hiddenStates: float32Tensor([1, tokens, channels], x), encoderHiddenStates: text.t5, pooledProjections: text.pooled, timestep: [sigma], guidance, imgIds, txtIds },
      { signal },
    );
    return out.data as Float32Array;
  };
  const startIndex = image?.startIndex ?? 0;
  const initial = image === undefined ? noise : noisedLatents(image.imageLatents, noise, request.sigmas[startIndex] as number);
  const inpainting = image?.mask === undefined ? undefined : { mask: image.mask, imageLatents: image.imageLatents, noise };
  return denoise(initial, { sigmas: request.sigmas, startIndex, velocity, inpainting, onStep: request.onStep, signal: request.signal });
}
