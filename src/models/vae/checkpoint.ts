/**
 * Opens a FLUX autoencoder in either layout: a diffusers `vae/` folder (config.json +
 * diffusion_pytorch_model.safetensors; a pipeline root works too) or BFL `ae.safetensors`
 * (optionally under `first_stage_model.` / `vae.`), validating every tensor.
 */
import { existsSync } from 'node:fs';
import { openTensorSource, type TensorInfo, type TensorSource } from '../../weights/safetensors.js';
import { CheckpointError, checkpointProblems, detectByMarker, modelFolder, readCheckpointConfig } from '../common/checkpoint.js';
import { FLUX_VAE_CONFIG, vaeConfigFromBfl, vaeConfigFromDiffusers, type VaeConfig } from './config.js';
import { storedTensor, vaeTensors, type VaeLayout } from './layout.js';

export class VaeCheckpointError extends CheckpointError {}

const MARKERS: Record<VaeLayout, string> = {
  bfl: 'decoder.mid.attn_1.q.weight',
  diffusers: 'decoder.mid_block.attentions.0.to_q.weight',
};
const PREFIXES = ['', 'first_stage_model.', 'vae.'];

export interface VaeCheckpoint {
  path: string;
  layout: VaeLayout;
  config: VaeConfig;
  source: TensorSource;
  prefix: string;
  /** The stored tensor for a canonical (diffusers) name. */
  locate(name: string): TensorInfo;
}

/** Infers the architecture from shapes; scaling/shift and group count take the FLUX values. */
function inferConfig(path: string, source: TensorSource, layout: VaeLayout, prefix: string): VaeConfig {
  const names = source
    .names()
    .filter((n) => n.startsWith(prefix))
    .map((n) => n.slice(prefix.length));
  const pattern = layout === 'bfl' ? /^encoder\.down\.(\d+)\.block\.(\d+)\.conv1\.weight$/ : /^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.conv1\.weight$/;
  const levels = new Map<number, { out: number; blocks: number }>();
  for (const n of names) {
    const m = pattern.exec(n);
    if (m === null) continue;
    const level = Number(m[1]);
    const entry = levels.get(level) ?? { out: source.info(prefix + n).shape[0] as number, blocks: 0 };
    entry.blocks = Math.max(entry.blocks, Number(m[2]) + 1);
    levels.set(level, entry);
  }
  const convOut = `${prefix}encoder.conv_out.weight`;
  if (levels.size === 0 || !source.has(convOut)) throw new VaeCheckpointError(path, 'cannot infer the VAE config from the tensor shapes');
  const ordered = [...levels.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  return {
    ...FLUX_VAE_CONFIG,
    inChannels: source.info(`${prefix}encoder.conv_in.weight`).shape[1] as number,
    blockOutChannels: ordered.map((l) => l.out),
    layersPerBlock: ordered[0]?.blocks as number,
    latentChannels: (source.info(convOut).shape[0] as number) / 2,
  };
}

export async function openVaeCheckpoint(path: string): Promise<VaeCheckpoint> {
  if (!existsSync(path)) throw new VaeCheckpointError(path, 'no such file or folder');
  const folder = modelFolder(path, 'vae');
  const source = await openTensorSource(folder ?? path);
  const found = detectByMarker(source, MARKERS, PREFIXES);
  if (found === null) {
    throw new VaeCheckpointError(path, `not a FLUX autoencoder: found neither "${MARKERS.bfl}" (BFL ae layout) nor "${MARKERS.diffusers}" (diffusers layout)`);
  }
  const { layout, prefix } = found;
  const { config } = readCheckpointConfig({
    path,
    folder,
    metadata: source.metadata,
    parse: (from, raw, origin) => (origin === 'metadata' && layout === 'bfl' ? vaeConfigFromBfl : vaeConfigFromDiffusers)(from, raw),
    infer: () => inferConfig(path, source, layout, prefix),
    error: VaeCheckpointError,
  });
  const stored = new Map(vaeTensors(config).map((t) => [t.name, storedTensor(config, layout, t)]));
  const problems = checkpointProblems(source, new Map([...stored.values()].map((t) => [t.name, t.shape])), prefix);
  if (problems.length > 0) {
    throw new VaeCheckpointError(path, `not a valid ${layout === 'bfl' ? 'BFL' : 'diffusers'} FLUX autoencoder for its config: ${problems.join('; ')}`);
  }
  return {
    path,
    layout,
    config,
    source,
    prefix,
    locate(name) {
      const t = stored.get(name);
      if (t === undefined) throw new VaeCheckpointError(path, `no parameter "${name}" in this autoencoder`);
      return source.info(prefix + t.name);
    },
  };
}
