/** FLUX autoencoder configuration (docs/flux-math.md §1.3), from diffusers config.json or BFL AutoEncoderParams. */

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  /** Channels per resolution level (diffusers block_out_channels = ch · ch_mult). */
  blockOutChannels: number[];
  /** ResNet blocks per encoder level (the decoder has one more). */
  layersPerBlock: number;
  latentChannels: number;
  groups: number;
  scalingFactor: number;
  shiftFactor: number;
}

export const FLUX_VAE_CONFIG: VaeConfig = {
  inChannels: 3,
  outChannels: 3,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  latentChannels: 16,
  groups: 32,
  scalingFactor: 0.3611,
  shiftFactor: 0.1159,
};

/** Pixel size of one latent cell: 2^(levels − 1) (8 for FLUX). */
export function vaeScaleFactor(config: VaeConfig): number {
  return 2 ** (config.blockOutChannels.length - 1);
}

export class VaeConfigError extends Error {
  constructor(source: string, detail: string) {
    super(`${source}: invalid VAE config: ${detail}`);
    this.name = 'VaeConfigError';
  }
}

function int(source: string, raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw new VaeConfigError(source, `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function num(source: string, raw: Record<string, unknown>, key: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new VaeConfigError(source, `"${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function channels(source: string, value: unknown, key: string): number[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((c) => !Number.isInteger(c) || c <= 0)) {
    throw new VaeConfigError(source, `"${key}" must be a non-empty list of positive integers, got ${JSON.stringify(value)}`);
  }
  return value as number[];
}

function checked(source: string, c: VaeConfig): VaeConfig {
  for (const ch of c.blockOutChannels) {
    if (ch % c.groups !== 0) throw new VaeConfigError(source, `${ch} channels are not divisible into ${c.groups} groups`);
  }
  return c;
}

export function vaeConfigFromDiffusers(source: string, raw: Record<string, unknown>): VaeConfig {
  if (raw.use_quant_conv === true || raw.use_post_quant_conv === true) {
    throw new VaeConfigError(source, 'quant_conv / post_quant_conv are not part of the FLUX autoencoder');
  }
  if (raw.mid_block_add_attention === false) throw new VaeConfigError(source, 'the FLUX autoencoder has mid-block attention');
  return checked(source, {
    inChannels: int(source, raw, 'in_channels', 3),
    outChannels: int(source, raw, 'out_channels', 3),
    blockOutChannels: channels(source, raw.block_out_channels, 'block_out_channels'),
    layersPerBlock: int(source, raw, 'layers_per_block'),
    latentChannels: int(source, raw, 'latent_channels'),
    groups: int(source, raw, 'norm_num_groups', 32),
    scalingFactor: num(source, raw, 'scaling_factor', FLUX_VAE_CONFIG.scalingFactor),
    shiftFactor: num(source, raw, 'shift_factor', FLUX_VAE_CONFIG.shiftFactor),
  });
}

/** BFL AutoEncoderParams (the golden kit adds group_norm_num_groups; BFL itself uses 32). */
export function vaeConfigFromBfl(source: string, raw: Record<string, unknown>): VaeConfig {
  const ch = int(source, raw, 'ch');
  return checked(source, {
    inChannels: int(source, raw, 'in_channels', 3),
    outChannels: int(source, raw, 'out_ch', 3),
    blockOutChannels: channels(source, raw.ch_mult, 'ch_mult').map((m) => ch * m),
    layersPerBlock: int(source, raw, 'num_res_blocks'),
    latentChannels: int(source, raw, 'z_channels'),
    groups: int(source, raw, 'group_norm_num_groups', 32),
    scalingFactor: num(source, raw, 'scale_factor', FLUX_VAE_CONFIG.scalingFactor),
    shiftFactor: num(source, raw, 'shift_factor', FLUX_VAE_CONFIG.shiftFactor),
  });
}
