/**
 * Prompt → FLUX text conditioning: T5 hidden states [1, M, d] (M = 512 for dev, 256 for
 * schnell) and the CLIP pooled vector [1, 768]. Results are kept in a bounded LRU keyed by
 * (prompt, sequence length, encoder state), so repeated prompts skip both encoders. The
 * encoders load on the first encoding and stay loaded until `release` (the predictor's
 * residency pool calls it when it needs the memory: T5-XXL is 9.5 GB in bf16).
 */
import type { Device } from '../../onnx/device.js';
import { ClipTextEncoder } from './clip-text.js';
import { NO_LOW_RANK, type LowRankState } from '../common/low-rank.js';
import { T5Encoder, type T5Precision } from './t5-encoder.js';
import type { InferenceWorker } from '../../onnx/runner.js';
import { int64Tensor, type TensorData } from '../../onnx/tensor-data.js';
import { PromptTokenizer } from './prompt-tokenizer.js';
import { LruCache } from '../../util/lru-cache.js';

export interface TextConditionerOptions {
  t5: string;
  clip: string;
  t5Tokenizer: string;
  clipTokenizer: string;
  t5Precision?: T5Precision;
  /** Prompt embeddings kept (default 32). */
  cacheEntries?: number;
  cacheDir?: string;
  /** Where each encoder runs (default both on the CPU). */
  devices?: { t5: Device; clip: Device };
}

export interface PromptEmbeddings {
  t5: TensorData;
  pooled: TensorData;
  /** Tokens dropped because the prompt was longer than each encoder takes. */
  truncated: { t5: boolean; clip: boolean };
}

export class TextConditioner {
  private readonly cache: LruCache<string, PromptEmbeddings>;
  private readonly tokenizer: PromptTokenizer;
  private encoders: { t5: T5Encoder; clip: ClipTextEncoder } | null = null;
  /** Text-encoder state that changes embeddings (the active CLIP LoRAs); part of the cache key. */
  private state = '';
  private clipLowRank: LowRankState = NO_LOW_RANK;
  readonly stats = { hits: 0, misses: 0 };

  constructor(
    private readonly worker: InferenceWorker,
    private readonly options: TextConditionerOptions,
  ) {
    this.cache = new LruCache(options.cacheEntries ?? 32);
    this.tokenizer = new PromptTokenizer({ t5: options.t5Tokenizer, clip: options.clipTokenizer });
  }

  get loaded(): boolean {
    return this.encoders !== null;
  }

  /**
   * Sets the text-encoder LoRAs applied to CLIP (`key` names them and their strengths and
   * becomes part of the cache key); kept across releases and reloads of the encoders.
   */
  async setClipLowRank(state: LowRankState, key: string): Promise<void> {
    this.clipLowRank = state;
    this.state = key;
    if (this.encoders !== null) await this.encoders.clip.setLowRank(state);
  }

  /** Loads both encoders now (encode() loads them when needed; the predictor loads them first to time and account for them). */
  async load(): Promise<{ t5: T5Encoder; clip: ClipTextEncoder }> {
    if (this.encoders === null) {
      const devices = this.options.devices ?? { t5: 'cpu', clip: 'cpu' };
      const t5 = await T5Encoder.load(this.worker, this.options.t5, {
        precision: this.options.t5Precision ?? 'exact',
        cacheDir: this.options.cacheDir,
        session: { device: devices.t5 },
      });
      const clip = await ClipTextEncoder.load(this.worker, this.options.clip, { device: devices.clip });
      if (this.clipLowRank !== NO_LOW_RANK) await clip.setLowRank(this.clipLowRank);
      this.encoders = { t5, clip };
    }
    return this.encoders;
  }

  async release(): Promise<void> {
    const encoders = this.encoders;
    this.encoders = null;
    if (encoders !== null) {
      await encoders.t5.release();
      await encoders.clip.release();
    }
  }

  private key(prompt: string, t5Length: number): string {
    return JSON.stringify([prompt, t5Length, this.options.t5Precision ?? 'exact', this.state]);
  }

  /** Whether encoding this prompt would be answered from the cache (without loading the encoders). */
  cached(prompt: string, t5Length: number): boolean {
    return this.cache.has(this.key(prompt, t5Length));
  }

  async encode(prompt: string, t5Length: number, options: { signal?: AbortSignal } = {}): Promise<PromptEmbeddings> {
    const key = this.key(prompt, t5Length);
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      this.stats.hits++;
      return cached;
    }
    this.stats.misses++;
    const { t5: t5Ids, clip: clipIds } = await this.tokenizer.encode(prompt, t5Length);
    const encoders = await this.load();
    const t5 = await encoders.t5.encode(int64Tensor([1, t5Length], t5Ids.ids), options);
    const { pooled } = await encoders.clip.encode(int64Tensor([1, clipIds.ids.length], clipIds.ids), options);
    const result = { t5, pooled, truncated: { t5: t5Ids.truncated, clip: clipIds.truncated } };
    this.cache.set(key, result);
    return result;
  }
}
