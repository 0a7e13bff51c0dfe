/**
 * The FLUX.1 transformer as a ready-to-run model: opens a checkpoint (either layout),
 * builds its graph in exact or quantized (go_fast) mode, hosts the session in the
 * inference worker, and turns a forward call's inputs (σ, guidance, ids) into the graph's
 * conditioning inputs.
 */
import { InferenceWorker, type RemoteSession } from '../../onnx/runner.js';
import { float32Tensor, int64Tensor, type TensorData, type TensorMap } from '../../onnx/tensor-data.js';
export type { LowRankState, LowRankUpdate } from '../common/low-rank.js';
import type { SessionSettings } from '../../onnx/session-options.js';
import { openFluxCheckpoint, type FluxCheckpoint } from './checkpoint.js';
import type { FluxConfig } from './config.js';
import { embeddingArgument, ropeTables, timestepEmbedding } from './conditioning.js';
import { exactParameters } from './exact-parameters.js';
import { buildFluxGraph, FLUX_INPUTS, FLUX_OUTPUT } from './graph.js';
import { lowRankFeeds, lowRankScaleFeeds, lowRankViews, NO_LOW_RANK, strengthState, type LowRankState } from '../common/low-rank.js';
import { linearSpecs } from './layout.js';
import { fluxQuantizedCache, quantizedParameters } from './quantized-parameters.js';
import { QUANTIZED_4BIT, QUANTIZED_8BIT } from '../../weights/quantized-cache.js';

export type FluxPrecision = 'exact' | 'int8' | 'int4';

export interface FluxTransformerOptions {
  /** exact: float32 compute from the stored weights; int8 (go_fast) / int4: block-quantized weights. */
  precision?: FluxPrecision;
  /** Where quantized weights are cached (default $FLUX_LORA_CACHE_DIR or ~/.cache/flux-lora). */
  cacheDir?: string;
  /**
   * How σ and guidance enter the embedding: 'bf16' rounds like the references running bf16
   * weights (guidance 3.5 → 3504, docs/flux-math.md §6.3), 'fp32' does not; 'auto' follows the
   * checkpoint's stored dtype.
   */
  embeddingPrecision?: 'auto' | 'bf16' | 'fp32';
  /** Build the low-rank (LoRA) inputs on every linear (default true; false only to measure their cost). */
  lowRankInputs?: boolean;
  session?: SessionSettings;
}

export interface FluxForwardInputs {
  /** Packed latents [B, N, inChannels]. */
  hiddenStates: TensorData;
  /** T5 hidden states [B, M, contextDim]. */
  encoderHiddenStates: TensorData;
  /** CLIP pooled output [B, pooledDim]. */
  pooledProjections: TensorData;
  /** σ ∈ [0, 1] per batch element. */
  timestep: readonly number[];
  /** Guidance scale per batch element (dev-like models only). */
  guidance?: readonly number[];
  /** Position ids [N, 3] and [M, 3]. */
  imgIds: Float32Array;
  txtIds: Float32Array;
}

export interface LoadReport {
  /** Whether the quantized weights had to be derived (false: read from the cache). */
  quantizedCacheCreated?: boolean;
  quantizedCachePath?: string;
}

export class FluxTransformerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FluxTransformerError';
  }
}

function dims(name: string, tensor: TensorData, expected: (number | null)[]): number[] {
  const ok = tensor.type === 'float32' && tensor.dims.length === expected.length && expected.every((d, i) => d === null || d === tensor.dims[i]);
  if (!ok) {
    const shape = expected.map((d) => d ?? '?').join(', ');
    throw new FluxTransformerError(`input "${name}" must be float32 [${shape}], got ${tensor.type} [${tensor.dims.join(', ')}]`);
  }
  return tensor.dims;
}

/**
 * The settings the transformer's session is created with. On the CPU onnxruntime's graph optimizers change nothing
 * here but a SiLU fusion on four vectors (the graph is built with the fused ops): the velocity is bit-identical and the
 * step as fast without them, and they cost session-creation time (docs/onnxruntime.md §10.12). On WebGPU they fold the
 * weights' casts (docs/webgpu.md), so they stay on there. Settings given explicitly win.
 */
export function fluxSessionSettings(session: SessionSettings = {}): SessionSettings {
  return { graphOptimization: session.device === 'webgpu' ? 'all' : 'disabled', ...session };
}

export class FluxTransformer {
  /** The bound updates without their matrices: what a strength change recomputes its feeds from. */
  private lowRank: LowRankState = NO_LOW_RANK;

  private constructor(
    readonly checkpoint: FluxCheckpoint,
    readonly precision: FluxPrecision,
    private readonly session: RemoteSession,
    private readonly bf16Embedding: boolean,
    private readonly lowRankInputs: boolean,
    readonly report: LoadReport,
  ) {}

  get config(): FluxConfig {
    return this.checkpoint.config;
  }

  static async load(worker: InferenceWorker, path: string, options: FluxTransformerOptions = {}): Promise<FluxTransformer> {
    const checkpoint = await openFluxCheckpoint(path);
    const precision = options.precision ?? 'exact';
    const report: LoadReport = {};
    let params = exactParameters(checkpoint);
    if (precision !== 'exact') {
      const settings = precision === 'int8' ? QUANTIZED_8BIT : QUANTIZED_4BIT;
      const cache = await fluxQuantizedCache(checkpoint, settings, options.cacheDir);
      report.quantizedCacheCreated = cache.created;
      report.quantizedCachePath = cache.file.path;
      params = quantizedParameters(checkpoint, cache.file, settings);
    }
    const lowRankInputs = options.lowRankInputs ?? true;
    const model = buildFluxGraph(checkpoint.config, params, { name: `flux-transformer (${precision})`, lora: lowRankInputs, device: options.session?.device });
    const session = await worker.load(model, fluxSessionSettings(options.session));
    const transformer = new FluxTransformer(
      checkpoint,
      precision,
      session,
      (options.embeddingPrecision ?? 'auto') === 'auto' ? checkpoint.bf16 : options.embeddingPrecision === 'bf16',
      lowRankInputs,
      report,
    );
    if (lowRankInputs) await transformer.setLowRank(NO_LOW_RANK);
    return transformer;
  }

  /**
   * Sets the low-rank updates (LoRAs, one slot each) fed with every run; linears without one
   * get rank 0. Never rebuilds the session. `transfer` moves the state's buffers to the worker
   * (they are empty afterwards) instead of copying them; updates marked `kept` bind arrays the
   * worker already holds.
   */
  async setLowRank(state: LowRankState, options: { transfer?: boolean } = {}): Promise<void> {
    if (!this.lowRankInputs) throw new FluxTransformerError('this transformer was loaded without low-rank inputs');
    const linears = linearSpecs(this.config);
    const feeds = lowRankFeeds(linears, state);
    const kept = strengthState(state);
    await this.session.bind(feeds, { ...options, views: lowRankViews(linears, state) });
    this.lowRank = kept;
  }

  /** Changes only the LoRA strengths (one per slot of the current state): the scale and bias vectors of the linears they update. */
  async setLowRankScales(scales: readonly number[]): Promise<void> {
    if (!this.lowRankInputs) throw new FluxTransformerError('this transformer was loaded without low-rank inputs');
    await this.session.bind(lowRankScaleFeeds(linearSpecs(this.config), this.lowRank, scales));
    this.lowRank = { ...this.lowRank, scales: [...scales] };
  }

  /** One transformer evaluation: the velocity [B, N, outChannels]. */
  async forward(inputs: FluxForwardInputs, options: { signal?: AbortSignal } = {}): Promise<TensorData> {
    const c = this.config;
    const [batch, imageTokens] = dims('hiddenStates', inputs.hiddenStates, [null, null, c.inChannels]) as [number, number];
    const [, textTokens] = dims('encoderHiddenStates', inputs.encoderHiddenStates, [batch, null, c.contextDim]) as [number, number];
    dims('pooledProjections', inputs.pooledProjections, [batch, c.pooledDim]);
    if (inputs.timestep.length !== batch) throw new FluxTransformerError(`input "timestep" needs ${batch} values, got ${inputs.timestep.length}`);
    if (inputs.imgIds.length !== imageTokens * 3) throw new FluxTransformerError(`input "imgIds" must be [${imageTokens}, 3]`);
    if (inputs.txtIds.length !== textTokens * 3) throw new FluxTransformerError(`input "txtIds" must be [${textTokens}, 3]`);
    const feeds: TensorMap = {
      [FLUX_INPUTS.hiddenStates]: inputs.hiddenStates,
      [FLUX_INPUTS.encoderHiddenStates]: inputs.encoderHiddenStates,
      [FLUX_INPUTS.pooled]: inputs.pooledProjections,
      [FLUX_INPUTS.timestepEmbedding]: float32Tensor(
        [batch, 256],
        timestepEmbedding(
          inputs.timestep.map((t) => embeddingArgument(t, this.bf16Embedding)),
          this.bf16Embedding,
        ),
      ),
    };
    if (c.guidanceEmbed) {
      if (inputs.guidance?.length !== batch) {
        throw new FluxTransformerError(`input "guidance" needs ${batch} values for this guidance-distilled (dev) model`);
      }
      feeds[FLUX_INPUTS.guidanceEmbedding] = float32Tensor(
        [batch, 256],
        timestepEmbedding(
          inputs.guidance.map((g) => embeddingArgument(g, this.bf16Embedding)),
          this.bf16Embedding,
        ),
      );
    }
    const tokens = textTokens + imageTokens;
    const ids = new Float32Array(tokens * 3);
    ids.set(inputs.txtIds, 0);
    ids.set(inputs.imgIds, textTokens * 3);
    const rope = ropeTables(c, ids, tokens);
    feeds[FLUX_INPUTS.ropeCos] = float32Tensor([tokens, c.headDim / 2], rope.cos);
    feeds[FLUX_INPUTS.ropeSin] = float32Tensor([tokens, c.headDim / 2], rope.sin);
    feeds[FLUX_INPUTS.ropePositions] = int64Tensor(
      [batch, tokens],
      Array.from({ length: batch * tokens }, (_, i) => i % tokens),
    );
    const out = await this.session.run(feeds, { signal: options.signal });
    return out[FLUX_OUTPUT] as TensorData;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
