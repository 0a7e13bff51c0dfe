/**
 * The built-in model: a tiny FLUX-architecture pipeline (transformer, VAE with the real
 * 8× factor, T5 and CLIP encoders, their tokenizers) generated deterministically by this code,
 * so flux-lora runs out of the box without downloads. Its weights are seeded random numbers:
 * the images it makes are not meaningful. Written once into the cache folder as two diffusers
 * pipeline folders, FLUX.1-dev and FLUX.1-schnell, exactly as real weights are laid out, with
 * a tiny safety pair beside them (./tiny-safety.ts) so the safety path always runs.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIP_KIND } from '../models/text/clip-text.js';
import { configFromDiffusers } from '../models/flux/config.js';
import { expectedStoredShapes } from '../models/flux/layout.js';
import { T5_KIND } from '../models/text/t5-encoder.js';
import { vaeConfigFromDiffusers } from '../models/vae/config.js';
import { vaeTensors } from '../models/vae/layout.js';
import { randn } from '../pipeline/noise.js';
import { writeSafetensors } from '../weights/safetensors-writer.js';
import { writeTinySafetyPair } from './tiny-safety.js';
import { writeClipTokenizer, writeT5Tokenizer, type UnigramPiece } from './tokenizer-files.js';

/** The shipped weights of the built-in model (the same path from src/builtin/ and dist/builtin/). */
export const BUILTIN_ASSETS = fileURLToPath(new URL('../../assets/builtin', import.meta.url));

/** Bump when anything below changes: the folder name carries it, so old caches are not reused. */
const VERSION = 'builtin-v2';

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()";
const T5_PIECES: UnigramPiece[] = [
  ['▁', -2],
  ...['a', 'the', 'of', 'photo', 'in', 'on', 'with', 'and', 'TOK', 'cat', 'dog', 'style'].map((w): UnigramPiece => [`▁${w}`, -3]),
  ...[...letters].map((c): UnigramPiece => [c, -6]),
];

const TRANSFORMER = {
  _class_name: 'FluxTransformer2DModel',
  in_channels: 64,
  out_channels: 64,
  patch_size: 1,
  num_layers: 1,
  num_single_layers: 1,
  // One 16-wide head: attention over the 4608 tokens of a 1024² image dominates a step and
  // costs heads × head_dim (2×16 took 52 ms per step, 1×32 43 ms, 1×16 about half of that).
  attention_head_dim: 16,
  num_attention_heads: 1,
  joint_attention_dim: 32,
  pooled_projection_dim: 32,
  axes_dims_rope: [4, 6, 6],
};
const VAE = {
  _class_name: 'AutoencoderKL',
  in_channels: 3,
  out_channels: 3,
  block_out_channels: [8, 8, 16, 16],
  layers_per_block: 1,
  latent_channels: 16,
  norm_num_groups: 4,
  scaling_factor: 0.3611,
  shift_factor: 0.1159,
  use_quant_conv: false,
  use_post_quant_conv: false,
  mid_block_add_attention: true,
};
const T5 = {
  architectures: ['T5EncoderModel'],
  vocab_size: 3 + T5_PIECES.length,
  d_model: 32,
  d_kv: 8,
  num_heads: 4,
  d_ff: 64,
  num_layers: 1,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  layer_norm_epsilon: 1e-6,
  feed_forward_proj: 'gated-gelu',
};
const CLIP = {
  architectures: ['CLIPTextModel'],
  hidden_size: 32,
  num_attention_heads: 4,
  intermediate_size: 64,
  num_hidden_layers: 1,
  max_position_embeddings: 77,
  layer_norm_eps: 1e-5,
  hidden_act: 'quick_gelu',
};

/**
 * Seeded weights: matrices and convolutions N(0, 1/fan_in), norm scales 1 + N(0, 0.1²),
 * other vectors N(0, 0.02²); each tensor from its own seed, so the files never change.
 */
async function writeWeights(path: string, shapes: Iterable<[string, readonly number[]]>, seed: number): Promise<void> {
  const tensors = [...shapes].map(([name, shape], i) => {
    const count = shape.reduce((s, d) => s * d, 1);
    const values = randn(seed * 1000 + i, Math.ceil(count / 16) * 16, 'fp32').subarray(0, count);
    const fanIn = shape.slice(1).reduce((s, d) => s * d, 1);
    const isScale = shape.length === 1 && /norm|layer_norm/.test(name) && name.endsWith('weight');
    const std = shape.length >= 2 ? 1 / Math.sqrt(fanIn) : isScale ? 0.1 : 0.02;
    const data = values.map((v) => (isScale ? 1 : 0) + v * std);
    return { name, dtype: 'F32' as const, shape: [...shape], data };
  });
  await writeSafetensors(path, tensors);
}

async function writeComponent(folder: string, config: object, weightsFile: string, shapes: Iterable<[string, readonly number[]]>, seed: number): Promise<void> {
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'config.json'), JSON.stringify(config, null, 2));
  await writeWeights(join(folder, weightsFile), shapes, seed);
}

async function writePipeline(root: string, variant: 'dev' | 'schnell'): Promise<void> {
  const transformer = { ...TRANSFORMER, guidance_embeds: variant === 'dev' };
  const fluxConfig = configFromDiffusers('built-in', transformer);
  await writeComponent(
    join(root, 'transformer'),
    transformer,
    'diffusion_pytorch_model.safetensors',
    expectedStoredShapes(fluxConfig, 'diffusers'),
    variant === 'dev' ? 1 : 2,
  );
  const vae = vaeConfigFromDiffusers('built-in', VAE);
  await writeComponent(
    join(root, 'vae'),
    VAE,
    'diffusion_pytorch_model.safetensors',
    vaeTensors(vae).map((t) => [t.name, t.shape]),
    3,
  );
  const t5 = T5_KIND.fromConfig('built-in', T5);
  const t5Tensors = T5_KIND.expected(t5);
  await writeComponent(join(root, 'text_encoder_2'), T5, 'model.safetensors', [...t5Tensors.required, ['shared.weight', [t5.vocabSize, t5.dModel]]], 4);
  const clipVocab = JSON.parse(await readFile(join(writeClipTokenizer(join(root, 'tokenizer')), 'vocab.json'), 'utf8')) as object;
  const clipConfig = { ...CLIP, vocab_size: Object.keys(clipVocab).length };
  const clip = CLIP_KIND.fromConfig('built-in', clipConfig);
  await writeComponent(join(root, 'text_encoder'), clipConfig, 'model.safetensors', CLIP_KIND.expected(clip).required, 5);
  writeT5Tokenizer(join(root, 'tokenizer_2'), T5_PIECES);
  await writeFile(
    join(root, 'model_index.json'),
    JSON.stringify({ _class_name: 'FluxPipeline', 'flux-lora': `${VERSION} (built-in tiny model, random weights)` }, null, 2),
  );
}

/**
 * The built-in model folder under `cacheDir` (holding FLUX.1-dev/ and FLUX.1-schnell/),
 * written on first use. Concurrent first uses are safe: each writes a private temp folder
 * and the first rename wins.
 */
export async function ensureBuiltinModel(cacheDir: string): Promise<string> {
  const target = join(cacheDir, VERSION);
  if (existsSync(join(target, 'FLUX.1-schnell', 'model_index.json'))) return target;
  await mkdir(cacheDir, { recursive: true });
  const temp = join(cacheDir, `.${VERSION}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writePipeline(join(temp, 'FLUX.1-dev'), 'dev');
    await writePipeline(join(temp, 'FLUX.1-schnell'), 'schnell');
    await writeTinySafetyPair(temp);
    await rename(temp, target).catch((error: NodeJS.ErrnoException) => {
      if (!existsSync(join(target, 'FLUX.1-schnell', 'model_index.json'))) throw error;
    });
    return target;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
