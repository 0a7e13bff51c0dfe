/** Writes a random-weight FLUX transformer checkpoint in the BFL layout (streamed: never all in RAM). */
import type { FluxConfig } from '../src/models/flux/config.js';
import { expectedStoredShapes } from '../src/models/flux/layout.js';
import { f32ToBf16 } from '../src/weights/dtypes.js';
import { writeSafetensors } from '../src/weights/safetensors-writer.js';
import { randomFloats } from './random.js';

const CHUNK_ROWS = 1024;

export async function writeRandomFlux(path: string, config: FluxConfig, dtype: 'BF16' | 'F32', withConfigMetadata: boolean): Promise<void> {
  const shapes = [...expectedStoredShapes(config, 'bfl')];
  const tensors = shapes.map(([name, shape], index) => ({
    name,
    dtype,
    shape,
    data: async function* () {
      const [rows, cols = 1] = shape as [number, number?];
      // Weights ~ U(−1/√in, 1/√in); biases and norm scales small around 0 / 1.
      const scale = shape.length === 2 ? 1 / Math.sqrt(cols) : 0.02;
      for (let r = 0; r < rows; r += CHUNK_ROWS) {
        const n = Math.min(CHUNK_ROWS, rows - r) * cols;
        const values = randomFloats(n, index * 7919 + r + 1, scale);
        if (name.endsWith('_norm.scale')) values.forEach((v, i) => (values[i] = 1 + v));
        yield dtype === 'F32' ? new Uint8Array(values.buffer) : new Uint8Array(f32ToBf16(values).buffer);
      }
    },
  }));
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
  await writeSafetensors(path, tensors, withConfigMetadata ? { config: JSON.stringify(params) } : {});
}
