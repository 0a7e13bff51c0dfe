/**
 * Step 1 of the built-in model's training (README.md there): writes its frozen text side into
 * assets/builtin/FLUX.1-dev/ — the tokenizers (every world word one token) and the tiny T5 and
 * CLIP encoders. Their weights are seeded random numbers except T5's attention, which is set by
 * hand to be purely positional (head 0 reads the previous word, 1 the next, 2 itself, 3 the word
 * two back), so each word's state carries its neighbours' and "red circle" binds the colour to the
 * shape for the transformer to read. Run: npx tsx tools/train-builtin/text-encoders.ts
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeClipTokenizer, writeT5Tokenizer, type UnigramPiece } from '../../src/builtin/tokenizer-files.js';
import { WORLD_WORDS } from '../../src/demo-world/vocabulary.js';
import { CLIP_KIND } from '../../src/models/text/clip-text.js';
import { ClipTokenizer } from '../../src/models/text/clip-tokenizer.js';
import { relativePositionBucket, T5_KIND } from '../../src/models/text/t5-encoder.js';
import { T5Tokenizer } from '../../src/models/text/t5-tokenizer.js';
import { randn } from '../../src/pipeline/noise.js';
import { writeSafetensors } from '../../src/weights/safetensors-writer.js';
import { BUILTIN_ASSETS } from '../../src/builtin/tiny-model.js';

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()";
const T5_PIECES: UnigramPiece[] = [['▁', -2], ...WORLD_WORDS.map((w): UnigramPiece => [`▁${w}`, -3]), ...[...letters].map((c): UnigramPiece => [c, -6])];

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
/** The relative position (key − query) each T5 head attends to, and the bias that makes it ~98% of its attention at 512 tokens. */
const T5_HEAD_OFFSETS = [-1, 1, 0, -2];
const T5_FOCUS = 10;

/** Seeded weights: matrices N(0, 1/fan_in), norm scales 1 + N(0, 0.1²), other vectors N(0, 0.02²); each tensor from its own seed. */
function seededTensor(name: string, shape: readonly number[], seed: number): Float32Array {
  const count = shape.reduce((s, d) => s * d, 1);
  const values = randn(seed, Math.ceil(count / 16) * 16, 'fp32').subarray(0, count);
  const fanIn = shape.slice(1).reduce((s, d) => s * d, 1);
  const isScale = shape.length === 1 && /norm|layer_norm/.test(name) && name.endsWith('weight');
  const std = shape.length >= 2 ? 1 / Math.sqrt(fanIn) : isScale ? 0.1 : 0.02;
  return values.map((v) => (isScale ? 1 : 0) + v * std);
}

async function writeEncoder(
  folder: string,
  config: object,
  shapes: [string, readonly number[]][],
  seed: number,
  set: (name: string, data: Float32Array) => void = () => {},
) {
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const tensors = shapes.map(([name, shape], i) => {
    const data = seededTensor(name, shape, seed * 1000 + i);
    set(name, data);
    return { name, dtype: 'F32' as const, shape: [...shape], data };
  });
  await writeSafetensors(join(folder, 'model.safetensors'), tensors);
}

function positionalT5Attention(name: string, data: Float32Array): void {
  if (/SelfAttention\.(q|k)\.weight$/.test(name)) data.fill(0);
  if (name === T5_KIND.marker) {
    data.fill(0);
    T5_HEAD_OFFSETS.forEach((offset, head) => {
      data[relativePositionBucket(offset, T5.relative_attention_num_buckets, T5.relative_attention_max_distance) * T5_HEAD_OFFSETS.length + head] = T5_FOCUS;
    });
  }
}

export async function writeTextEncoders(root: string): Promise<void> {
  writeT5Tokenizer(join(root, 'tokenizer_2'), T5_PIECES);
  writeClipWorldTokenizer(join(root, 'tokenizer'));
  const t5 = T5_KIND.fromConfig('built-in', T5);
  const t5Tensors = T5_KIND.expected(t5);
  await writeEncoder(join(root, 'text_encoder_2'), T5, [...t5Tensors.required, ['shared.weight', [t5.vocabSize, t5.dModel]]], 4, positionalT5Attention);
  const clipVocab = JSON.parse(await readFile(join(root, 'tokenizer', 'vocab.json'), 'utf8')) as object;
  const clipConfig = { ...CLIP, vocab_size: Object.keys(clipVocab).length };
  await writeEncoder(join(root, 'text_encoder'), clipConfig, [...CLIP_KIND.expected(CLIP_KIND.fromConfig('built-in', clipConfig)).required], 5);
  const t5Tokenizer = T5Tokenizer.fromFolder(join(root, 'tokenizer_2'));
  const split = WORLD_WORDS.filter((w) => t5Tokenizer.tokens(w).length !== 1);
  if (split.length > 0) throw new Error(`world words that are not one T5 token: ${split.join(', ')}`);
}

/** CLIP merges rank in word order; words another word's merges split move to the front until none is split. */
function writeClipWorldTokenizer(folder: string): void {
  let order = [...WORLD_WORDS];
  for (let attempt = 0; attempt < 20; attempt++) {
    writeClipTokenizer(folder, order);
    const tokenizer = ClipTokenizer.fromFolder(folder);
    const split = order.filter((w) => tokenizer.tokens(w).length !== 1);
    if (split.length === 0) return;
    order = [...split, ...order.filter((w) => !split.includes(w))];
  }
  throw new Error('no CLIP merge order makes every world word one token');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await writeTextEncoders(join(BUILTIN_ASSETS, 'FLUX.1-dev'));
  console.log(`text encoders and tokenizers written to ${join(BUILTIN_ASSETS, 'FLUX.1-dev')}`);
}
