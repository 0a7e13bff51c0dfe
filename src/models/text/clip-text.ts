/**
 * CLIP text tower (docs/flux-math.md §2.10): token + position embeddings, pre-LN blocks with
 * causal self-attention (q scaled by head_dim^−½) and quick-GELU MLPs, final LayerNorm.
 * FLUX uses the pooled output: the hidden state at the first position of the highest
 * token id (the first EOS).
 */
import type { Device } from '../../onnx/device.js';
import { GraphBuilder, type BuiltModel, type Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import type { InferenceWorker, RemoteSession } from '../../onnx/runner.js';
import type { SessionSettings } from '../../onnx/session-options.js';
import { float32Tensor, int64Tensor, type TensorData } from '../../onnx/tensor-data.js';
import { externalRef, floatWeight } from '../common/stored-weights.js';
import { lowRankFeeds, lowRankInputs, NO_LOW_RANK, type LowRankLinear, type LowRankState } from '../common/low-rank.js';
import { positiveInt } from '../common/checkpoint.js';
import {
  checkTokenIds,
  openTextEncoderCheckpoint,
  TextEncoderCheckpointError,
  TextEncoderInputError,
  type TextEncoderCheckpoint,
  type TextEncoderKind,
} from './checkpoint.js';

export interface ClipTextConfig {
  vocabSize: number;
  hidden: number;
  heads: number;
  intermediate: number;
  layers: number;
  maxPositions: number;
  eps: number;
  activation: 'quick_gelu' | 'gelu';
}

const LAYER = (i: number) => `text_model.encoder.layers.${i}`;

export const CLIP_KIND: TextEncoderKind<ClipTextConfig> = {
  label: 'CLIP text encoder',
  subfolder: 'text_encoder',
  marker: 'text_model.embeddings.token_embedding.weight',
  prefixes: ['', 'text_encoders.clip_l.transformer.', 'cond_stage_model.transformer.'],
  fromConfig(source, raw) {
    const error = (detail: string) => new TextEncoderCheckpointError(source, `invalid CLIP config: ${detail}`);
    const activation = raw.hidden_act ?? 'quick_gelu';
    if (activation !== 'quick_gelu' && activation !== 'gelu') throw error(`hidden_act "${String(activation)}" is not supported`);
    const hidden = positiveInt(error, raw, 'hidden_size');
    const heads = positiveInt(error, raw, 'num_attention_heads');
    if (hidden % heads !== 0) throw error(`hidden_size ${hidden} is not divisible by ${heads} heads`);
    return {
      vocabSize: positiveInt(error, raw, 'vocab_size'),
      hidden,
      heads,
      intermediate: positiveInt(error, raw, 'intermediate_size'),
      layers: positiveInt(error, raw, 'num_hidden_layers'),
      maxPositions: positiveInt(error, raw, 'max_position_embeddings'),
      eps: typeof raw.layer_norm_eps === 'number' ? raw.layer_norm_eps : 1e-5,
      activation,
    };
  },
  infer(source, tensors, prefix) {
    const shape = (name: string) => {
      if (!tensors.has(prefix + name)) throw new TextEncoderCheckpointError(source, `cannot infer the CLIP config: "${prefix + name}" is missing`);
      return tensors.info(prefix + name).shape;
    };
    const [vocabSize, hidden] = shape(CLIP_KIND.marker) as [number, number];
    let layers = 0;
    while (tensors.has(`${prefix}${LAYER(layers)}.layer_norm1.weight`)) layers++;
    // Head count is not visible in the shapes; CLIP text towers use 64-wide heads.
    return {
      vocabSize,
      hidden,
      heads: hidden / 64,
      intermediate: shape(`${LAYER(0)}.mlp.fc1.weight`)[0] as number,
      layers,
      maxPositions: shape('text_model.embeddings.position_embedding.weight')[0] as number,
      eps: 1e-5,
      activation: 'quick_gelu',
    };
  },
  expected(c) {
    const required = new Map<string, number[]>([
      [CLIP_KIND.marker, [c.vocabSize, c.hidden]],
      ['text_model.embeddings.position_embedding.weight', [c.maxPositions, c.hidden]],
      ['text_model.final_layer_norm.weight', [c.hidden]],
      ['text_model.final_layer_norm.bias', [c.hidden]],
    ]);
    for (let i = 0; i < c.layers; i++) {
      for (const p of ['q', 'k', 'v', 'out']) {
        required.set(`${LAYER(i)}.self_attn.${p}_proj.weight`, [c.hidden, c.hidden]);
        required.set(`${LAYER(i)}.self_attn.${p}_proj.bias`, [c.hidden]);
      }
      for (const n of ['layer_norm1', 'layer_norm2']) for (const p of ['weight', 'bias']) required.set(`${LAYER(i)}.${n}.${p}`, [c.hidden]);
      required.set(`${LAYER(i)}.mlp.fc1.weight`, [c.intermediate, c.hidden]);
      required.set(`${LAYER(i)}.mlp.fc1.bias`, [c.intermediate]);
      required.set(`${LAYER(i)}.mlp.fc2.weight`, [c.hidden, c.intermediate]);
      required.set(`${LAYER(i)}.mlp.fc2.bias`, [c.hidden]);
    }
    // Full CLIP checkpoints also carry the vision tower and projections; position_ids buffers appear in some files.
    return { required, optional: new Map([['text_model.embeddings.position_ids', [1, c.maxPositions]]]) };
  },
};

/** The encoder's linears (HF module paths), each with low-rank inputs for text-encoder LoRAs. */
export function clipLinears(c: ClipTextConfig): LowRankLinear[] {
  return Array.from({ length: c.layers }, (_, i) => [
    ...['q_proj', 'k_proj', 'v_proj', 'out_proj'].map((p) => ({ name: `${LAYER(i)}.self_attn.${p}`, inFeatures: c.hidden, outFeatures: c.hidden })),
    { name: `${LAYER(i)}.mlp.fc1`, inFeatures: c.hidden, outFeatures: c.intermediate },
    { name: `${LAYER(i)}.mlp.fc2`, inFeatures: c.intermediate, outFeatures: c.hidden },
  ]).flat();
}

function buildGraph(checkpoint: TextEncoderCheckpoint<ClipTextConfig>, device: Device): BuiltModel {
  const c = checkpoint.config;
  const g = new GraphBuilder('clip-text', { device });
  const weight = (name: string, anchor?: Value) => floatWeight(g, name, externalRef(checkpoint.locate(name)), anchor);
  const specs = new Map(clipLinears(c).map((l) => [l.name, l]));
  const linear = (x: Value, name: string) =>
    g.scope(name, () => {
      const lowRank = lowRankInputs(g, specs.get(name) as LowRankLinear);
      const bias = op.add(g, weight(`${name}.bias`), lowRank.bias, 'bias_with_delta');
      return lowRank.apply(x, op.add(g, op.matmulTransposed(g, x, weight(`${name}.weight`, x)), bias));
    });
  const norm = (x: Value, name: string) => op.layerNorm(g, x, { scale: weight(`${name}.weight`), bias: weight(`${name}.bias`), epsilon: c.eps, name });
  const ids = g.input('input_ids', 'int64', ['batch', 'length']);
  const positions = g.input('position_ids', 'int64', [1, 'length']);
  const embed = (table: string, index: Value) => op.cast(g, op.gather(g, g.external(table, externalRef(checkpoint.locate(table))), index, 0), 'float32');
  let x = op.add(g, embed(CLIP_KIND.marker, ids), embed('text_model.embeddings.position_embedding.weight', positions));
  for (let i = 0; i < c.layers; i++) {
    x = g.scope(LAYER(i), () => {
      const a = norm(x, `${LAYER(i)}.layer_norm1`);
      const p = `${LAYER(i)}.self_attn`;
      const attn = op.attention(g, linear(a, `${p}.q_proj`), linear(a, `${p}.k_proj`), linear(a, `${p}.v_proj`), { numHeads: c.heads, causal: true });
      const x1 = op.add(g, x, linear(attn, `${p}.out_proj`));
      const h = linear(norm(x1, `${LAYER(i)}.layer_norm2`), `${LAYER(i)}.mlp.fc1`);
      // quick_gelu(x) = x·σ(1.702x)
      const act = c.activation === 'quick_gelu' ? op.mul(g, h, op.sigmoid(g, op.mul(g, h, 1.702))) : op.gelu(g, h, 'none');
      return op.add(g, x1, linear(act, `${LAYER(i)}.mlp.fc2`));
    });
  }
  g.output(norm(x, 'text_model.final_layer_norm'), 'last_hidden_state');
  return g.build();
}

/** Index of the first occurrence of the largest id in each row (the first EOS). */
export function poolIndices(ids: TensorData): number[] {
  const [batch, length] = ids.dims as [number, number];
  const data = ids.data as BigInt64Array;
  return Array.from({ length: batch }, (_, b) => {
    let best = 0;
    for (let n = 1; n < length; n++) if ((data[b * length + n] as bigint) > (data[b * length + best] as bigint)) best = n;
    return best;
  });
}

export class ClipTextEncoder {
  private constructor(
    readonly checkpoint: TextEncoderCheckpoint<ClipTextConfig>,
    private readonly session: RemoteSession,
  ) {}

  get config(): ClipTextConfig {
    return this.checkpoint.config;
  }

  static async load(worker: InferenceWorker, path: string, settings?: SessionSettings): Promise<ClipTextEncoder> {
    const checkpoint = await openTextEncoderCheckpoint(path, CLIP_KIND);
    const encoder = new ClipTextEncoder(checkpoint, await worker.load(buildGraph(checkpoint, settings?.device ?? 'cpu'), settings));
    await encoder.setLowRank(NO_LOW_RANK);
    return encoder;
  }

  /** Text-encoder LoRAs, combined per linear (see src/lora/apply.ts); rank 0 elsewhere. */
  async setLowRank(state: LowRankState): Promise<void> {
    await this.session.bind(lowRankFeeds(clipLinears(this.config), state));
  }

  /** Token ids [B, L] → last hidden state [B, L, hidden] and pooled output [B, hidden]. */
  async encode(ids: TensorData, options: { signal?: AbortSignal } = {}): Promise<{ lastHiddenState: TensorData; pooled: TensorData }> {
    checkTokenIds(ids, this.config.vocabSize);
    const [batch, length] = ids.dims as [number, number];
    if (length > this.config.maxPositions)
      throw new TextEncoderInputError(`input "input_ids" has ${length} tokens, more than the ${this.config.maxPositions} positions of this CLIP`);
    const positions = int64Tensor(
      [1, length],
      Array.from({ length }, (_, i) => i),
    );
    const out = await this.session.run({ input_ids: ids, position_ids: positions }, { signal: options.signal });
    const last = out.last_hidden_state as TensorData;
    const hidden = this.config.hidden;
    const pooled = new Float32Array(batch * hidden);
    poolIndices(ids).forEach((n, b) => pooled.set((last.data as Float32Array).subarray((b * length + n) * hidden, (b * length + n + 1) * hidden), b * hidden));
    return { lastHiddenState: last, pooled: float32Tensor([batch, hidden], pooled) };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
