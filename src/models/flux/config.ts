/** FLUX.1 transformer configuration (docs/flux-math.md §1.1), read from either checkpoint layout. */

export interface FluxConfig {
  /** Packed latent channels (64 for FLUX.1: 16 latent channels × 2×2 patch). */
  inChannels: number;
  outChannels: number;
  /** D = heads × headDim. */
  hidden: number;
  heads: number;
  headDim: number;
  mlpHidden: number;
  doubleBlocks: number;
  singleBlocks: number;
  /** T5 width (joint_attention_dim / context_in_dim). */
  contextDim: number;
  /** CLIP pooled width (pooled_projection_dim / vec_in_dim). */
  pooledDim: number;
  /** dev has a guidance embedder, schnell does not. */
  guidanceEmbed: boolean;
  /** RoPE dims per position axis; their sum is headDim. */
  axesDims: number[];
  theta: number;
}

export const FLUX_DEV_CONFIG: FluxConfig = {
  inChannels: 64,
  outChannels: 64,
  hidden: 3072,
  heads: 24,
  headDim: 128,
  mlpHidden: 12288,
  doubleBlocks: 19,
  singleBlocks: 38,
  contextDim: 4096,
  pooledDim: 768,
  guidanceEmbed: true,
  axesDims: [16, 56, 56],
  theta: 10000,
};

export class FluxConfigError extends Error {
  constructor(source: string, detail: string) {
    super(`${source}: invalid FLUX transformer config: ${detail}`);
    this.name = 'FluxConfigError';
  }
}

function positiveInt(source: string, raw: Record<string, unknown>, key: string, fallback?: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new FluxConfigError(source, `"${key}" must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function axes(source: string, value: unknown, headDim: number): number[] {
  const dims = value ?? (headDim === 128 ? [16, 56, 56] : undefined);
  if (!Array.isArray(dims) || dims.some((d) => !Number.isInteger(d) || d <= 0 || d % 2 !== 0)) {
    throw new FluxConfigError(source, `RoPE axes dims must be even positive integers, got ${JSON.stringify(dims)}`);
  }
  if (dims.reduce((s: number, d: number) => s + d, 0) !== headDim) {
    throw new FluxConfigError(source, `RoPE axes dims ${JSON.stringify(dims)} do not sum to the head dim ${headDim}`);
  }
  return dims as number[];
}

/** diffusers `transformer/config.json` (FluxTransformer2DModel). */
export function configFromDiffusers(source: string, raw: Record<string, unknown>): FluxConfig {
  const heads = positiveInt(source, raw, 'num_attention_heads');
  const headDim = positiveInt(source, raw, 'attention_head_dim');
  const inChannels = positiveInt(source, raw, 'in_channels');
  if ((raw.patch_size ?? 1) !== 1) throw new FluxConfigError(source, `patch_size ${JSON.stringify(raw.patch_size)} is not supported (FLUX uses 1)`);
  return {
    inChannels,
    outChannels: raw.out_channels == null ? inChannels : positiveInt(source, raw, 'out_channels'),
    hidden: heads * headDim,
    heads,
    headDim,
    mlpHidden: 4 * heads * headDim,
    doubleBlocks: positiveInt(source, raw, 'num_layers'),
    singleBlocks: positiveInt(source, raw, 'num_single_layers'),
    contextDim: positiveInt(source, raw, 'joint_attention_dim'),
    pooledDim: positiveInt(source, raw, 'pooled_projection_dim'),
    guidanceEmbed: raw.guidance_embeds === true,
    axesDims: axes(source, raw.axes_dims_rope, headDim),
    theta: 10000,
  };
}

/** BFL `FluxParams` (as the golden kit stores it in the file metadata). */
export function configFromBfl(source: string, raw: Record<string, unknown>): FluxConfig {
  const hidden = positiveInt(source, raw, 'hidden_size');
  const heads = positiveInt(source, raw, 'num_heads');
  if (hidden % heads !== 0) throw new FluxConfigError(source, `hidden_size ${hidden} is not divisible by num_heads ${heads}`);
  const mlpRatio = raw.mlp_ratio ?? 4;
  if (typeof mlpRatio !== 'number' || !Number.isInteger(hidden * mlpRatio)) {
    throw new FluxConfigError(source, `mlp_ratio ${JSON.stringify(raw.mlp_ratio)} is invalid`);
  }
  if (raw.qkv_bias === false) throw new FluxConfigError(source, 'qkv_bias=false is not a FLUX.1 checkpoint');
  const inChannels = positiveInt(source, raw, 'in_channels');
  return {
    inChannels,
    outChannels: positiveInt(source, raw, 'out_channels', inChannels),
    hidden,
    heads,
    headDim: hidden / heads,
    mlpHidden: hidden * mlpRatio,
    doubleBlocks: positiveInt(source, raw, 'depth'),
    singleBlocks: positiveInt(source, raw, 'depth_single_blocks'),
    contextDim: positiveInt(source, raw, 'context_in_dim'),
    pooledDim: positiveInt(source, raw, 'vec_in_dim'),
    guidanceEmbed: raw.guidance_embed === true,
    axesDims: axes(source, raw.axes_dim, hidden / heads),
    theta: positiveInt(source, raw, 'theta', 10000),
  };
}
