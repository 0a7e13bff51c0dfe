/** Writes random-weight checkpoints for benchmarks (streamed: never all in RAM). */
import type { FluxConfig } from '../src/models/flux/config.js';
import { expectedStoredShapes } from '../src/models/flux/layout.js';
import { f32ToBf16 } from '../src/weights/dtypes.js';
import { writeSafetensors } from '../src/weights/safetensors-writer.js';
import { randomFloats } from './random.js';

const CHUNK_ROWS = 1024;

/** Weights ~ U(−1/√fan_in, 1/√fan_in); vectors small around 0, or around 1 for norm scales. */
export async function writeRandomCheckpoint(
  path: string,
  shapes: Iterable<[string, number[]]>,
  dtype: 'BF16' | 'F32',
  metadata: Record<string, string> = {},
): Promise<void> {
  const tensors = [...shapes].map(([name, shape], index) => ({
    name,
    dtype,
    shape,
    data: async function* () {
      const [rows = 1, ...rest] = shape;
      const cols = rest.reduce((s, d) => s * d, 1);
      const isScale = shape.length === 1 && /(norm|scale)/.test(name) && !name.endsWith('bias');
      const scale = shape.length >= 2 ? 1 / Math.sqrt(cols) : 0.02;
      for (let r = 0; r < rows; r += CHUNK_ROWS) {
        const values = randomFloats(Math.min(CHUNK_ROWS, rows - r) * cols, index * 7919 + r + 1, scale);
        if (isScale) values.forEach((v, i) => (values[i] = 1 + v));
        yield dtype === 'F32' ? new Uint8Array(values.buffer) : new Uint8Array(f32ToBf16(values).buffer);
      }
    },
  }));
  await writeSafetensors(path, tensors, metadata);
}

/** A random FLUX transformer in the BFL layout, optionally with its FluxParams as `config` metadata. */
export async function writeRandomFlux(path: string, config: FluxConfig, dtype: 'BF16' | 'F32', withConfigMetadata: boolean): Promise<void> {
  const params = {
    in_channels: config.inChannels,
    out_channels: config.outChannels,
    vec_in_dim: config.pooledDim,
    context_in_dim: config.contextDim,
    hidden_size: config.hidden,
    mlp_ratio: config.mlpHidden / config.hidden,
    num_heads: config.heads,
    depth: config.doubleBlocks,
    depth_single_blocks: config.singleBlocks,
    axes_dim: config.axesDims,
    theta: config.theta,
    qkv_bias: true,
    guidance_embed: config.guidanceEmbed,
  };
  await writeRandomCheckpoint(path, expectedStoredShapes(config, 'bfl'), dtype, withConfigMetadata ? { config: JSON.stringify(params) } : {});
}
