import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIP_KIND, type ClipTextConfig } from '../../../src/models/text/clip-text.js';
import { T5_KIND, type T5Config } from '../../../src/models/text/t5-encoder.js';
import { TextConditioner } from '../../../src/models/text/conditioner.js';
import { NO_LOW_RANK } from '../../../src/models/common/low-rank.js';
import { LruCache } from '../../../src/util/lru-cache.js';
import { writeRandomWeights } from '../../helpers/random-weights.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { writeClipTokenizer, writeT5Tokenizer } from '../../helpers/tokenizer-files.js';

const worker = useWorker();
const tmp = useTempDir('conditioner-');

const T5_CONFIG: T5Config = { vocabSize: 16, dModel: 32, dKv: 8, heads: 4, dFf: 64, layers: 2, buckets: 32, maxDistance: 128, eps: 1e-6 };
const CLIP_CONFIG: ClipTextConfig = {
  vocabSize: 522,
  hidden: 32,
  heads: 4,
  intermediate: 64,
  layers: 2,
  maxPositions: 77,
  eps: 1e-5,
  activation: 'quick_gelu',
};

async function conditioner(cacheEntries = 4): Promise<TextConditioner> {
  const dir = tmp();
  const t5 = join(dir, 't5.safetensors');
  const clip = join(dir, 'clip.safetensors');
  const t5Config = { vocab_size: 16, d_model: 32, d_kv: 8, num_heads: 4, d_ff: 64, num_layers: 2, feed_forward_proj: 'gated-gelu' };
  const clipConfig = {
    vocab_size: 522,
    hidden_size: 32,
    num_attention_heads: 4,
    intermediate_size: 64,
    num_hidden_layers: 2,
    max_position_embeddings: 77,
    hidden_act: 'quick_gelu',
  };
  await writeRandomWeights(t5, [...T5_KIND.expected(T5_CONFIG).required, ['shared.weight', [16, 32]]], { config: JSON.stringify(t5Config) });
  await writeRandomWeights(clip, CLIP_KIND.expected(CLIP_CONFIG).required, { config: JSON.stringify(clipConfig) });
  return new TextConditioner(worker(), {
    t5,
    clip,
    t5Tokenizer: writeT5Tokenizer(join(dir, 't5-tokenizer')),
    clipTokenizer: writeClipTokenizer(join(dir, 'clip-tokenizer')),
    cacheEntries,
  });
}

describe('LRU cache', () => {
  it('evicts the least recently used entry', () => {
    const lru = new LruCache<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    expect(lru.get('a')).toBe(1);
    lru.set('c', 3);
    expect([lru.get('a'), lru.get('b'), lru.get('c'), lru.size]).toEqual([1, undefined, 3, 2]);
    const none = new LruCache<string, number>(0);
    none.set('a', 1);
    expect(none.get('a')).toBeUndefined();
    expect(() => new LruCache(-1)).toThrow(RangeError);
  });
});

describe('text conditioning', () => {
  it('encodes prompts to T5 states and the CLIP pooled vector, and serves repeats from the cache', async () => {
    const c = await conditioner();
    const first = await c.encode('a cat', 8);
    expect(first.t5.dims).toEqual([1, 8, 32]);
    expect(first.pooled.dims).toEqual([1, 32]);
    expect(first.truncated).toEqual({ t5: false, clip: false });
    expect(await c.encode('a cat', 8)).toBe(first);
    expect((await c.encode('a cat', 16)).t5.dims).toEqual([1, 16, 32]);
    expect(c.stats).toEqual({ hits: 1, misses: 2 });
    await c.setClipLowRank(NO_LOW_RANK, 'clip-lora:abc');
    expect(await c.encode('a cat', 8)).not.toBe(first);
    expect(c.loaded).toBe(true);
    const long = await c.encode('hello '.repeat(100), 8);
    expect(long.truncated).toEqual({ t5: true, clip: true });
    await c.release();
  });

  it('loads the encoders again after a release and gives the same embeddings', async () => {
    const c = await conditioner(0);
    const a = await c.encode('the cats!', 8);
    await c.release();
    expect(c.loaded).toBe(false);
    const b = await c.encode('the cats!', 8);
    expect(c.loaded).toBe(true);
    expect(b).not.toBe(a);
    expect(b.t5.data).toEqual(a.t5.data);
    expect(b.pooled.data).toEqual(a.pooled.data);
    await c.release();
  });
});
