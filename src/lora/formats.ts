/**
 * Reads a LoRA file in any of the common FLUX formats (docs/flux-math.md §5.2–5.3) into one
 * canonical form: per module, down A [r, in], up B [out, r], the factor α/r and an
 * optional up bias, with the module named in the namespace its format uses.
 */
import type { TensorSource } from '../weights/safetensors.js';

/** How a module name is spelled: BFL paths, diffusers paths, their underscore forms, XLabs, or CLIP. */
export type ModuleNamespace = 'bfl' | 'kohya' | 'diffusers' | 'mixture' | 'xlabs' | 'clip';

export type LoraFormat = 'kohya' | 'peft' | 'bfl' | 'xlabs' | 'mixture';

export interface LoraLayer {
  module: string;
  namespace: ModuleNamespace;
  rank: number;
  inFeatures: number;
  outFeatures: number;
  /** A, row-major [rank, in]. */
  down: Float32Array;
  /** B, row-major [out, rank]. */
  up: Float32Array;
  /** α/r (1 when the format has no alpha). */
  factor: number;
  /** Trained up bias [out] (BFL LinearLora), added as s·bias. */
  bias?: Float32Array;
  /** The file's tensor names this layer was read from. */
  tensors: string[];
}

export interface ParsedLora {
  label: string;
  format: LoraFormat;
  layers: LoraLayer[];
  /** Tensor names that belong to no usable layer (DoRA scales, diffs, T5 LoRAs, strays). */
  ignored: string[];
}

export class LoraError extends Error {
  constructor(
    readonly label: string,
    readonly detail: string,
  ) {
    super(`LoRA ${label}: ${detail}`);
    this.name = 'LoraError';
  }
}

/** How a format names a module's tensors after the module name. */
export interface Suffixes {
  down: string;
  up: string;
  bias?: string;
}

export const KOHYA: Suffixes = { down: '.lora_down.weight', up: '.lora_up.weight' };
export const PEFT: Suffixes = { down: '.lora_A.weight', up: '.lora_B.weight', bias: '.lora_B.bias' };
const XLABS: Suffixes = { down: '.down.weight', up: '.up.weight' };

function detectFormat(names: readonly string[]): LoraFormat {
  if (names.some((n) => n.endsWith(KOHYA.down))) {
    if (names.some((n) => n.startsWith('lora_transformer_'))) return 'mixture';
    return names.some((n) => n.startsWith('transformer.')) ? 'peft' : 'kohya';
  }
  if (names.some((n) => n.includes('.processor.'))) return 'xlabs';
  return names.some((n) => n.startsWith('transformer.') || n.startsWith('text_encoder.')) ? 'peft' : 'bfl';
}

/** Module name and namespace of a tensor's module part, by format and prefix. */
function classify(format: LoraFormat, module: string): { module: string; namespace: ModuleNamespace } | null {
  const strip = (prefix: string) => (module.startsWith(prefix) ? module.slice(prefix.length) : null);
  switch (format) {
    case 'kohya': {
      const unet = strip('lora_unet_') ?? strip('diffusion_model.')?.replace(/\./g, '_') ?? null;
      if (unet !== null) return { module: unet, namespace: 'kohya' };
      const te = strip('lora_te1_') ?? strip('lora_te_') ?? strip('text_encoders.clip_l.transformer.')?.replace(/\./g, '_') ?? null;
      return te === null ? null : { module: te, namespace: 'clip' };
    }
    case 'mixture': {
      const transformer = strip('lora_transformer_');
      if (transformer !== null) return { module: transformer, namespace: 'mixture' };
      const te = strip('lora_te1_');
      return te === null ? null : { module: te, namespace: 'clip' };
    }
    case 'peft': {
      const transformer = strip('transformer.');
      if (transformer !== null) return { module: transformer, namespace: 'diffusers' };
      const te = strip('text_encoder.');
      return te === null ? null : { module: te.replace(/\./g, '_'), namespace: 'clip' };
    }
    case 'bfl':
      return { module: strip('diffusion_model.') ?? strip('base_model.model.') ?? module, namespace: 'bfl' };
    case 'xlabs':
      return { module: strip('diffusion_model.') ?? module, namespace: 'xlabs' };
  }
}

function scalar(values: Float32Array, label: string, name: string): number {
  if (values.length !== 1 || !Number.isFinite(values[0])) throw new LoraError(label, `"${name}" must be one finite number`);
  return values[0] as number;
}

/** PEFT adapter metadata (`lora_adapter_metadata`): lora_alpha, r and per-module patterns. */
function peftAlpha(metadata: Record<string, string>, module: string): number | undefined {
  const raw = metadata.lora_adapter_metadata;
  if (raw === undefined) return undefined;
  try {
    const config = JSON.parse(raw) as { lora_alpha?: number; alpha_pattern?: Record<string, number> };
    const pattern = Object.entries(config.alpha_pattern ?? {}).find(([k]) => module.endsWith(k));
    return pattern?.[1] ?? config.lora_alpha;
  } catch {
    return undefined;
  }
}

/**
 * The format a parsed LoRA was read as, for messages: a file without a single down/up pair is no
 * LoRA of any format (the format detection falls back to BFL names), so it is described as such.
 */
export function describeFormat(lora: ParsedLora): string {
  return lora.layers.length === 0 ? 'no LoRA down/up weight pairs in it' : `${lora.format} format`;
}

export async function parseLora(source: TensorSource, label: string): Promise<ParsedLora> {
  const names = source.names();
  const format = detectFormat(names);
  const suffixes = format === 'kohya' || format === 'mixture' ? KOHYA : format === 'xlabs' ? XLABS : names.some((n) => n.endsWith(KOHYA.down)) ? KOHYA : PEFT;
  const used = new Set<string>();
  const layers: LoraLayer[] = [];
  for (const downName of names.filter((n) => n.endsWith(suffixes.down))) {
    const base = downName.slice(0, -suffixes.down.length);
    const target = classify(format, base);
    const upName = base + suffixes.up;
    if (target === null || !source.has(upName)) continue;
    const [downInfo, upInfo] = [source.info(downName), source.info(upName)];
    if (downInfo.shape.length !== 2 || upInfo.shape.length !== 2) {
      throw new LoraError(label, `"${downName}" and "${upName}" must be matrices, got [${downInfo.shape}] and [${upInfo.shape}]`);
    }
    const [rank, inFeatures] = downInfo.shape as [number, number];
    const [outFeatures, upRank] = upInfo.shape as [number, number];
    if (upRank !== rank) throw new LoraError(label, `"${upName}" [${upInfo.shape}] does not match the rank ${rank} of "${downName}"`);
    const tensors = [downName, upName];
    const alphaName = `${base}.alpha`;
    let alpha: number | undefined;
    if (source.has(alphaName)) {
      alpha = scalar(await source.readFloat32(alphaName), label, alphaName);
      tensors.push(alphaName);
    } else if (format === 'peft') {
      alpha = peftAlpha(source.metadata, base);
    }
    const layer: LoraLayer = {
      ...target,
      rank,
      inFeatures,
      outFeatures,
      down: await source.readFloat32(downName),
      up: await source.readFloat32(upName),
      factor: alpha === undefined || rank === 0 ? 1 : alpha / rank,
      tensors,
    };
    const biasName = suffixes.bias === undefined ? undefined : base + suffixes.bias;
    if (biasName !== undefined && source.has(biasName)) {
      const bias = await source.readFloat32(biasName);
      if (bias.length !== outFeatures) throw new LoraError(label, `"${biasName}" has ${bias.length} values, expected ${outFeatures}`);
      layer.bias = bias;
      tensors.push(biasName);
    }
    tensors.forEach((t) => used.add(t));
    layers.push(layer);
  }
  return { label, format, layers, ignored: names.filter((n) => !used.has(n)) };
}
