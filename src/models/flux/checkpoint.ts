/**
 * Opens a FLUX transformer checkpoint in either layout users have (docs/flux-math.md §3.2):
 * a diffusers folder (`transformer/` with config.json and sharded safetensors + index)
 * or a BFL single file (`flux1-dev.safetensors` key names, optionally prefixed with
 * `model.diffusion_model.` or `diffusion_model.`). Detects the layout, reads or infers the
 * config and validates every tensor before anything is built.
 */
import { existsSync } from 'node:fs';
import { openTensorSource, type TensorInfo, type TensorSource } from '../../weights/safetensors.js';
import { configFromBfl, configFromDiffusers, type FluxConfig } from './config.js';
import { CheckpointError, checkpointProblems, detectByMarker, modelFolder, readCheckpointConfig } from '../common/checkpoint.js';
import { canonicalTensors, expectedStoredShapes, storedSlice, type FluxLayout } from './layout.js';

export class FluxCheckpointError extends CheckpointError {}

const MARKERS: Record<FluxLayout, string> = {
  bfl: 'double_blocks.0.img_attn.norm.key_norm.scale',
  diffusers: 'transformer_blocks.0.attn.norm_k.weight',
};
const PREFIXES = ['', 'model.diffusion_model.', 'diffusion_model.', 'transformer.'];

export interface FluxCheckpoint {
  path: string;
  layout: FluxLayout;
  config: FluxConfig;
  source: TensorSource;
  /** Prefix stripped from the stored keys ('' for plain files). */
  prefix: string;
  /** True when the weights are stored in bfloat16 (the references then compute in bf16). */
  bf16: boolean;
  /** The stored tensor holding canonical tensor `name` and, for parts of fused tensors, its rows. */
  locate(name: string): { info: TensorInfo; rows?: { start: number; count: number } };
}

function detectLayout(path: string, source: TensorSource): { layout: FluxLayout; prefix: string } {
  const found = detectByMarker(source, MARKERS, PREFIXES);
  if (found !== null) return found;
  throw new FluxCheckpointError(
    path,
    `not a FLUX.1 transformer checkpoint: found neither "${MARKERS.bfl}" (BFL layout) nor "${MARKERS.diffusers}" (diffusers layout)`,
  );
}

/** Infers the config of a single file from tensor shapes (§3.2 detection rules). */
function inferConfig(path: string, source: TensorSource, layout: FluxLayout, prefix: string): FluxConfig {
  const probe: FluxConfig = { ...zeroConfig() };
  const shape = (canonical: string): number[] => {
    const key = prefix + storedSlice(probe, layout, canonical, 0).key;
    if (!source.has(key)) throw new FluxCheckpointError(path, `cannot infer the config: tensor "${key}" is missing`);
    return source.info(key).shape;
  };
  const count = (pattern: RegExp) => {
    const indices = source
      .names()
      .filter((k) => k.startsWith(prefix))
      .map((k) => pattern.exec(k.slice(prefix.length))?.[1])
      .filter((i): i is string => i !== undefined)
      .map(Number);
    return indices.length === 0 ? 0 : Math.max(...indices) + 1;
  };
  const [hidden, inChannels] = shape('img_in.weight') as [number, number];
  const headDim = shape('double_blocks.0.img_attn.norm.query_norm.scale')[0] as number;
  const guidanceKey = prefix + storedSlice(probe, layout, 'guidance_in.in_layer.weight', 0).key;
  const doublePattern = layout === 'bfl' ? /^double_blocks\.(\d+)\.img_mod\.lin\.weight$/ : /^transformer_blocks\.(\d+)\.norm1\.linear\.weight$/;
  const singlePattern = layout === 'bfl' ? /^single_blocks\.(\d+)\.modulation\.lin\.weight$/ : /^single_transformer_blocks\.(\d+)\.norm\.linear\.weight$/;
  const raw = {
    hidden_size: hidden,
    num_heads: hidden / headDim,
    in_channels: inChannels,
    out_channels: shape('final_layer.linear.weight')[0],
    mlp_ratio: (shape('double_blocks.0.img_mlp.0.weight')[0] as number) / hidden,
    depth: count(doublePattern),
    depth_single_blocks: count(singlePattern),
    context_in_dim: shape('txt_in.weight')[1],
    vec_in_dim: shape('vector_in.in_layer.weight')[1],
    guidance_embed: source.has(guidanceKey),
    theta: 10000,
  };
  return configFromBfl(`${path} (config inferred from tensor shapes)`, raw);
}

function zeroConfig(): FluxConfig {
  return {
    inChannels: 0,
    outChannels: 0,
    hidden: 0,
    heads: 0,
    headDim: 0,
    mlpHidden: 0,
    doubleBlocks: 0,
    singleBlocks: 0,
    contextDim: 0,
    pooledDim: 0,
    guidanceEmbed: false,
    axesDims: [],
    theta: 10000,
  };
}

/** Every expected tensor present with the right shape and a float dtype, nothing unexpected. */
function validate(path: string, source: TensorSource, config: FluxConfig, layout: FluxLayout, prefix: string): void {
  const problems = checkpointProblems(source, expectedStoredShapes(config, layout), prefix);
  if (problems.length > 0) {
    throw new FluxCheckpointError(
      path,
      `not a valid ${layout === 'bfl' ? 'BFL' : 'diffusers'} FLUX transformer for its config (${config.doubleBlocks}+${config.singleBlocks} blocks, hidden ${config.hidden}): ${problems.join('; ')}`,
    );
  }
}

export async function openFluxCheckpoint(path: string): Promise<FluxCheckpoint> {
  if (!existsSync(path)) throw new FluxCheckpointError(path, 'no such file or folder');
  const folder = modelFolder(path, 'transformer');
  const source = await openTensorSource(folder ?? path);
  const { layout, prefix } = detectLayout(path, source);
  const { config } = readCheckpointConfig({
    path,
    folder,
    metadata: source.metadata,
    // config.json is diffusers'; metadata follows the layout of the weights (BFL keeps FluxParams there).
    parse: (from, raw, origin) => (origin === 'metadata' && layout === 'bfl' ? configFromBfl : configFromDiffusers)(from, raw),
    infer: () => inferConfig(path, source, layout, prefix),
    error: FluxCheckpointError,
  });
  validate(path, source, config, layout, prefix);
  const tensors = new Map(canonicalTensors(config).map((t) => [t.name, t]));
  const weightDtypes = [...tensors.keys()].map((name) => source.info(prefix + storedSlice(config, layout, name, 0).key).dtype);
  return {
    path,
    layout,
    config,
    source,
    prefix,
    bf16: weightDtypes.filter((d) => d === 'BF16').length > weightDtypes.length / 2,
    locate(name) {
      const tensor = tensors.get(name);
      if (tensor === undefined) throw new FluxCheckpointError(path, `no parameter "${name}" in this model`);
      const slice = storedSlice(config, layout, name, tensor.shape[0] as number);
      const info = source.info(prefix + slice.key);
      const whole = slice.rowStart === 0 && slice.rows === info.shape[0];
      return whole ? { info } : { info, rows: { start: slice.rowStart, count: slice.rows } };
    },
  };
}
