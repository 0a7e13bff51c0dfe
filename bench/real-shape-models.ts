/**
 * The real-shape model folder of the end-to-end benches: single files as ComfyUI users keep them,
 * with random bf16 weights (flux1-schnell 11.9 B params, t5xxl 4.8 B, clip_l, ae) and small
 * tokenizers. Written once (about 55 GB with the derived caches) and reused: a file present is kept.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeClipTokenizer, writeT5Tokenizer } from '../src/builtin/tokenizer-files.js';
import { CLIP_KIND, type ClipTextConfig } from '../src/models/text/clip-text.js';
import { FLUX_DEV_CONFIG } from '../src/models/flux/config.js';
import { T5_KIND, type T5Config } from '../src/models/text/t5-encoder.js';
import { FLUX_VAE_CONFIG } from '../src/models/vae/config.js';
import { storedTensor, vaeTensors } from '../src/models/vae/layout.js';
import { writeRandomCheckpoint, writeRandomFlux } from './random-checkpoint.js';

export const T5_XXL: T5Config = { vocabSize: 32128, dModel: 4096, dKv: 64, heads: 64, dFf: 10240, layers: 24, buckets: 32, maxDistance: 128, eps: 1e-6 };
export const CLIP_L: ClipTextConfig = {
  vocabSize: 49408,
  hidden: 768,
  heads: 12,
  intermediate: 3072,
  layers: 12,
  maxPositions: 77,
  eps: 1e-5,
  activation: 'quick_gelu',
};
export async function writeRealShapeModels(dir: string): Promise<void> {
  const started = performance.now();
  const write = async (file: string, make: () => Promise<void>) => {
    if (!existsSync(join(dir, file))) await make();
  };
  await write('flux1-schnell.safetensors', () =>
    writeRandomFlux(join(dir, 'flux1-schnell.safetensors'), { ...FLUX_DEV_CONFIG, guidanceEmbed: false }, 'BF16', false),
  );
  await write('t5xxl_bf16.safetensors', () =>
    writeRandomCheckpoint(
      join(dir, 't5xxl_bf16.safetensors'),
      [...T5_KIND.expected(T5_XXL).required, ['shared.weight', [T5_XXL.vocabSize, T5_XXL.dModel]]],
      'BF16',
    ),
  );
  await write('clip_l.safetensors', () => writeRandomCheckpoint(join(dir, 'clip_l.safetensors'), CLIP_KIND.expected(CLIP_L).required, 'BF16'));
  await write('ae.safetensors', () =>
    writeRandomCheckpoint(
      join(dir, 'ae.safetensors'),
      vaeTensors(FLUX_VAE_CONFIG)
        .map((t) => storedTensor(FLUX_VAE_CONFIG, 'bfl', t))
        .map((t) => [t.name, t.shape]),
      'BF16',
    ),
  );
  writeClipTokenizer(join(dir, 'tokenizer'));
  writeT5Tokenizer(join(dir, 'tokenizer_2'), [
    ['▁', -2],
    ['▁a', -3],
    ['▁photo', -3],
    ['▁of', -3],
    ['▁TOK', -3],
    ...['red', 'cube', 'on', 'table', 'cat', 'in', 'the', 'snow'].map((word): [string, number] => [`▁${word}`, -3]),
  ]);
  console.log(`model folder ready in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
