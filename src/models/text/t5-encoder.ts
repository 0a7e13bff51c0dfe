/**
 * T5 v1.1 encoder (docs/flux-math.md §2.9): embeddings without √d scaling, one relative
 * position bias shared by all layers, attention without 1/√d and without a mask (padding is
 * attended, as both references do), gated tanh-GELU feed-forward, RMS norms. Computes in
 * float32 from the stored weights; bf16/f16/f8 weights are cast just in time, one at a time.
 */
import type { Device } from '../../onnx/device.js';
import { GraphBuilder, type BuiltModel, type Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import type { InferenceWorker, RemoteSession } from '../../onnx/runner.js';
import type { SessionSettings } from '../../onnx/session-options.js';
import { int64Tensor, type TensorData } from '../../onnx/tensor-data.js';
import { externalRef, floatWeight } from '../common/stored-weights.js';
import { QUANTIZED_4BIT, QUANTIZED_8BIT, quantizedCache, storedWeight, type QuantizationSettings } from '../../weights/quantized-cache.js';
import { quantizedLinear } from '../common/quantized-linear.js';
import type { SafetensorsFile } from '../../weights/safetensors.js';
import { positiveInt } from '../common/checkpoint.js';
import { checkTokenIds, openTextEncoderCheckpoint, TextEncoderCheckpointError, type TextEncoderCheckpoint, type TextEncoderKind } from './checkpoint.js';

export interface T5Config {
  vocabSize: number;
  dModel: number;
  dKv: number;
  heads: number;
  dFf: number;
  layers: number;
  buckets: number;
  maxDistance: number;
  eps: number;
}

/**
 * Bidirectional relative-position bucket for rel = key − query (docs/flux-math.md §2.9, §7.6):
 * half the buckets per direction, exact below a quarter, log-spaced (float32 log) up to max_distance.
 */
export function relativePositionBucket(rel: number, buckets: number, maxDistance: number): number {
  const half = buckets / 2;
  const base = rel > 0 ? half : 0;
  const n = Math.abs(rel);
  const exact = half / 2;
  if (n < exact) return base + n;
  const f = Math.fround;
  const ratio = f(f(Math.log(f(n / exact))) / f(Math.log(f(maxDistance / exact))));
  return base + Math.min(half - 1, exact + Math.trunc(f(ratio * exact)));
}

/** bucket(j − i) for query i and key j, [length, length] row-major. */
export function positionBuckets(length: number, config: T5Config): BigInt64Array {
  const out = new BigInt64Array(length * length);
  for (let i = 0; i < length; i++) {
    for (let j = 0; j < length; j++) out[i * length + j] = BigInt(relativePositionBucket(j - i, config.buckets, config.maxDistance));
  }
  return out;
}

const BLOCK = (i: number) => `encoder.block.${i}`;

export const T5_KIND: TextEncoderKind<T5Config> = {
  label: 'T5 encoder',
  subfolder: 'text_encoder_2',
  marker: 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
  prefixes: ['', 'text_encoders.t5xxl.transformer.'],
  fromConfig(source, raw) {
    const error = (detail: string) => new TextEncoderCheckpointError(source, `invalid T5 config: ${detail}`);
    const act = raw.feed_forward_proj ?? 'gated-gelu';
    if (act !== 'gated-gelu') throw error(`feed_forward_proj "${String(act)}" is not T5 v1.1's gated-gelu`);
    return {
      vocabSize: positiveInt(error, raw, 'vocab_size'),
      dModel: positiveInt(error, raw, 'd_model'),
      dKv: positiveInt(error, raw, 'd_kv'),
      heads: positiveInt(error, raw, 'num_heads'),
      dFf: positiveInt(error, raw, 'd_ff'),
      layers: positiveInt(error, raw, 'num_layers'),
      buckets: positiveInt(error, raw, 'relative_attention_num_buckets', 32),
      maxDistance: positiveInt(error, raw, 'relative_attention_max_distance', 128),
      eps: typeof raw.layer_norm_epsilon === 'number' ? raw.layer_norm_epsilon : 1e-6,
    };
  },
  infer(source, tensors, prefix) {
    const shape = (name: string) => {
      if (!tensors.has(prefix + name)) throw new TextEncoderCheckpointError(source, `cannot infer the T5 config: "${prefix + name}" is missing`);
      return tensors.info(prefix + name).shape;
    };
    const [buckets, heads] = shape(T5_KIND.marker) as [number, number];
    const [vocabSize, dModel] = shape(tensors.has(`${prefix}shared.weight`) ? 'shared.weight' : 'encoder.embed_tokens.weight') as [number, number];
    let layers = 0;
    while (tensors.has(`${prefix}${BLOCK(layers)}.layer.0.layer_norm.weight`)) layers++;
    return {
      vocabSize,
      dModel,
      heads,
      dKv: (shape(`${BLOCK(0)}.layer.0.SelfAttention.q.weight`)[0] as number) / heads,
      dFf: shape(`${BLOCK(0)}.layer.1.DenseReluDense.wi_0.weight`)[0] as number,
      layers,
      buckets,
      maxDistance: 128,
      eps: 1e-6,
    };
  },
  expected(c) {
    const required = new Map<string, number[]>();
    const optional = new Map<string, number[]>([
      ['shared.weight', [c.vocabSize, c.dModel]],
      ['encoder.embed_tokens.weight', [c.vocabSize, c.dModel]],
    ]);
    const inner = c.heads * c.dKv;
    required.set(T5_KIND.marker, [c.buckets, c.heads]);
    for (let i = 0; i < c.layers; i++) {
      for (const p of ['q', 'k', 'v']) required.set(`${BLOCK(i)}.layer.0.SelfAttention.${p}.weight`, [inner, c.dModel]);
      required.set(`${BLOCK(i)}.layer.0.SelfAttention.o.weight`, [c.dModel, inner]);
      required.set(`${BLOCK(i)}.layer.0.layer_norm.weight`, [c.dModel]);
      required.set(`${BLOCK(i)}.layer.1.DenseReluDense.wi_0.weight`, [c.dFf, c.dModel]);
      required.set(`${BLOCK(i)}.layer.1.DenseReluDense.wi_1.weight`, [c.dFf, c.dModel]);
      required.set(`${BLOCK(i)}.layer.1.DenseReluDense.wo.weight`, [c.dModel, c.dFf]);
      required.set(`${BLOCK(i)}.layer.1.layer_norm.weight`, [c.dModel]);
    }
    required.set('encoder.final_layer_norm.weight', [c.dModel]);
    return { required, optional };
  },
};

/** Every linear weight of the encoder, [out, in]. */
function t5Linears(c: T5Config): { name: string; n: number; k: number }[] {
  const inner = c.heads * c.dKv;
  return Array.from({ length: c.layers }, (_, i) => [
    ...['q', 'k', 'v'].map((p) => ({ name: `${BLOCK(i)}.layer.0.SelfAttention.${p}`, n: inner, k: c.dModel })),
    { name: `${BLOCK(i)}.layer.0.SelfAttention.o`, n: c.dModel, k: inner },
    { name: `${BLOCK(i)}.layer.1.DenseReluDense.wi_0`, n: c.dFf, k: c.dModel },
    { name: `${BLOCK(i)}.layer.1.DenseReluDense.wi_1`, n: c.dFf, k: c.dModel },
    { name: `${BLOCK(i)}.layer.1.DenseReluDense.wo`, n: c.dModel, k: c.dFf },
  ]).flat();
}

export type T5Precision = 'exact' | 'int8' | 'int8-mapped' | 'int4';

/**
 * Each quantized form: the cached weights (`stored`) and the MatMulNBits accuracy level its graph runs
 * them at. int8-mapped runs the int8 cache at level 0 (float32 activations), where onnxruntime does not
 * prepack 8-bit weights: they stay mapped from the cache file (docs/onnxruntime.md §4, §10.8).
 */
const T5_FORMS: Record<Exclude<T5Precision, 'exact'>, { stored: QuantizationSettings; accuracyLevel: 0 | 4 }> = {
  int8: { stored: QUANTIZED_8BIT, accuracyLevel: 4 },
  'int8-mapped': { stored: QUANTIZED_8BIT, accuracyLevel: 0 },
  int4: { stored: QUANTIZED_4BIT, accuracyLevel: 4 },
};

export interface T5Options {
  /** exact: float32 compute from the stored weights; int8 / int8-mapped / int4: MatMulNBits linears in T5_FORMS (go_fast uses int8-mapped on the CPU, int8 on WebGPU). */
  precision?: T5Precision;
  cacheDir?: string;
  session?: SessionSettings;
}

interface QuantizedT5 {
  file: SafetensorsFile;
  precision: Exclude<T5Precision, 'exact'>;
}

function buildGraph(checkpoint: TextEncoderCheckpoint<T5Config>, quantized: QuantizedT5 | null, device: Device): BuiltModel {
  const c = checkpoint.config;
  const g = new GraphBuilder(`t5-encoder${quantized === null ? '' : ` (${quantized.precision})`}`, { device });
  const weight = (name: string, anchor?: Value) => floatWeight(g, name, externalRef(checkpoint.locate(name)), anchor);
  const shapes = new Map(t5Linears(c).map((l) => [l.name, l]));
  const linear = (x: Value, name: string) =>
    quantized === null
      ? op.matmulTransposed(g, x, weight(`${name}.weight`, x))
      : quantizedLinear(g, x, quantized.file, shapes.get(name) as { name: string; n: number; k: number }, {
          ...T5_FORMS[quantized.precision].stored,
          accuracyLevel: T5_FORMS[quantized.precision].accuracyLevel,
        });
  const rms = (x: Value, name: string) => op.rmsNorm(g, x, weight(name), c.eps, name);
  const ids = g.input('input_ids', 'int64', ['batch', 'length']);
  const buckets = g.input('position_buckets', 'int64', ['length', 'length']);
  const table = ['shared.weight', 'encoder.embed_tokens.weight'].find((n) => checkpoint.source.has(checkpoint.prefix + n));
  if (table === undefined) throw new TextEncoderCheckpointError(checkpoint.path, 'missing the token embedding (shared.weight or encoder.embed_tokens.weight)');
  // Gather the rows first, then cast: the table itself is never converted.
  let h = op.cast(g, op.gather(g, g.external(table, externalRef(checkpoint.locate(table))), ids, 0, 'embed'), 'float32', 'embed_float32');
  // P[h, i, j] = Rb[bucket(j − i), h] as an additive attention bias [1, heads, L, L].
  const bias = op.unsqueeze(g, op.transpose(g, op.gather(g, weight(T5_KIND.marker), buckets, 0, 'position_bias'), [2, 0, 1]), [0]);
  for (let i = 0; i < c.layers; i++) {
    h = g.scope(BLOCK(i), () => {
      const p = `${BLOCK(i)}.layer.0.SelfAttention`;
      const a = rms(h, `${BLOCK(i)}.layer.0.layer_norm.weight`);
      const attn = op.attention(g, linear(a, `${p}.q`), linear(a, `${p}.k`), linear(a, `${p}.v`), { numHeads: c.heads, scale: 1, bias });
      const h1 = op.add(g, h, linear(attn, `${p}.o`));
      const f = rms(h1, `${BLOCK(i)}.layer.1.layer_norm.weight`);
      const d = `${BLOCK(i)}.layer.1.DenseReluDense`;
      const gated = op.mul(g, op.gelu(g, linear(f, `${d}.wi_0`), 'tanh'), linear(f, `${d}.wi_1`));
      return op.add(g, h1, linear(gated, `${d}.wo`));
    });
  }
  g.output(rms(h, 'encoder.final_layer_norm.weight'), 'last_hidden_state');
  return g.build();
}

/** The encoder's linears in a quantized form, from the cache or derived into it. */
export function t5QuantizedCache(checkpoint: TextEncoderCheckpoint<T5Config>, precision: Exclude<T5Precision, 'exact'>, cacheDir?: string) {
  const linears = t5Linears(checkpoint.config);
  return quantizedCache({
    kind: `t5-encoder ${checkpoint.prefix}`,
    sourceFiles: linears.map((l) => checkpoint.locate(`${l.name}.weight`).file),
    linears: linears.map((l) => ({ ...l, read: async () => storedWeight(checkpoint.source, checkpoint.prefix + `${l.name}.weight`) })),
    settings: T5_FORMS[precision].stored,
    cacheDir,
  });
}

export class T5Encoder {
  private constructor(
    readonly checkpoint: TextEncoderCheckpoint<T5Config>,
    private readonly session: RemoteSession,
  ) {}

  get config(): T5Config {
    return this.checkpoint.config;
  }

  static async load(worker: InferenceWorker, path: string, options: T5Options = {}): Promise<T5Encoder> {
    const checkpoint = await openTextEncoderCheckpoint(path, T5_KIND);
    const precision = options.precision ?? 'exact';
    const quantized = precision === 'exact' ? null : { file: (await t5QuantizedCache(checkpoint, precision, options.cacheDir)).file, precision };
    return new T5Encoder(checkpoint, await worker.load(buildGraph(checkpoint, quantized, options.session?.device ?? 'cpu'), options.session));
  }

  /** Token ids [B, L] (int64) → last hidden state [B, L, d_model]. */
  async encode(ids: TensorData, options: { signal?: AbortSignal } = {}): Promise<TensorData> {
    checkTokenIds(ids, this.config.vocabSize);
    const length = ids.dims[1] as number;
    const buckets = int64Tensor([length, length], positionBuckets(length, this.config));
    const out = await this.session.run({ input_ids: ids, position_buckets: buckets }, { signal: options.signal });
    return out.last_hidden_state as TensorData;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
