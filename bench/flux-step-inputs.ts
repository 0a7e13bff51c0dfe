/** The reduced-depth model and the inputs of one FLUX denoising step on a square picture with 512 text tokens, random and deterministic (bench/flux-step.ts, bench/session-graph.ts). */
import { FLUX_DEV_CONFIG, type FluxConfig } from '../src/models/flux/config.js';
import type { FluxForwardInputs } from '../src/models/flux/transformer.js';
import { float32Tensor } from '../src/onnx/tensor-data.js';
import { randomFloats } from './random.js';

/** FLUX.1-dev's real block dimensions at reduced depth (2 double + 4 single blocks). */
export const REDUCED_CONFIG: FluxConfig = { ...FLUX_DEV_CONFIG, doubleBlocks: 2, singleBlocks: 4 };
export const TEXT_TOKENS = 512;
/** Image tokens per side of a square picture: 8× VAE, 2×2 patches. */
export const tokensPerSide = (side: number) => side / 16;

export function stepInputs(c: FluxConfig, side: number): FluxForwardInputs {
  const perSide = tokensPerSide(side);
  const imageTokens = perSide ** 2;
  const imgIds = new Float32Array(imageTokens * 3);
  for (let i = 0; i < imageTokens; i++) imgIds.set([0, Math.floor(i / perSide), i % perSide], i * 3);
  return {
    hiddenStates: float32Tensor([1, imageTokens, c.inChannels], randomFloats(imageTokens * c.inChannels, 1)),
    encoderHiddenStates: float32Tensor([1, TEXT_TOKENS, c.contextDim], randomFloats(TEXT_TOKENS * c.contextDim, 2, 0.5)),
    pooledProjections: float32Tensor([1, c.pooledDim], randomFloats(c.pooledDim, 3)),
    timestep: [0.8],
    guidance: [3.5],
    imgIds,
    txtIds: new Float32Array(TEXT_TOKENS * 3),
  };
}
