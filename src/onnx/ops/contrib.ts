/** onnxruntime `com.microsoft` contrib ops: fused attention and block-quantized matmul. */
import { attr } from '../onnx-proto.js';
import { MICROSOFT_DOMAIN, type GraphBuilder, type Value } from '../graph.js';
import { dimsConflict, formatShape } from '../shape.js';

export interface AttentionOptions {
  numHeads: number;
  /** Softmax scale; defaults to 1/√head_dim. */
  scale?: number;
  /** Additive bias broadcastable to [B, heads, S_q, S_kv]. */
  bias?: Value;
  /** Causal masking (each query sees keys at its position and before). */
  causal?: boolean;
  name?: string;
}

/**
 * softmax(q·kᵀ·scale + bias)·v per head, with q [B, S_q, H·D] and k/v [B, S_kv, H·D]
 * (heads are contiguous blocks of D channels). MultiHeadAttention never materializes
 * the S_q×S_kv score matrix on CPU (see docs/onnxruntime.md §5).
 */
export function multiHeadAttention(g: GraphBuilder, q: Value, k: Value, v: Value, options: AttentionOptions): Value {
  const node = g.op('MultiHeadAttention', options.name, MICROSOFT_DOMAIN);
  for (const t of [k, v, options.bias ?? null]) {
    if (t !== null && t.dtype !== q.dtype) node.fail(`dtypes differ: ${q} and ${t}`);
  }
  if (q.dtype !== 'float32') node.fail(`needs float32 inputs, got ${q}`);
  for (const t of [q, k, v]) {
    if (t.rank !== null && t.rank !== 3) node.fail(`q, k and v must be [B, S, heads·head_dim], got ${t}`);
  }
  const hidden = q.shape?.[2] ?? null;
  if (!Number.isInteger(options.numHeads) || options.numHeads < 1) node.fail(`invalid head count ${options.numHeads}`);
  if (typeof hidden === 'number' && hidden % options.numHeads !== 0) {
    node.fail(`hidden size ${hidden} is not divisible by ${options.numHeads} heads`);
  }
  if (dimsConflict(q.shape?.[0] ?? null, k.shape?.[0] ?? null) || dimsConflict(k.shape?.[0] ?? null, v.shape?.[0] ?? null)) {
    node.fail(`batch sizes differ: ${q}, ${k}, ${v}`);
  }
  if (dimsConflict(k.shape?.[1] ?? null, v.shape?.[1] ?? null)) node.fail(`key and value lengths differ: ${k}, ${v}`);
  if (dimsConflict(hidden, k.shape?.[2] ?? null)) node.fail(`query and key widths differ: ${q}, ${k}`);
  if (options.bias !== undefined) {
    const target = [q.shape?.[0] ?? null, options.numHeads, q.shape?.[1] ?? null, k.shape?.[1] ?? null];
    node.broadcast([options.bias.shape, target], `bias does not broadcast to ${formatShape(target)}: `);
  }
  const attributes: Record<string, ReturnType<typeof attr.int>> = {
    num_heads: attr.int(options.numHeads),
    unidirectional: attr.int(options.causal ? 1 : 0),
  };
  if (options.scale !== undefined) attributes.scale = attr.float(options.scale);
  const inputs = [q, k, v, null, null, options.bias ?? null];
  const shape = q.shape === null ? null : [q.shape[0] ?? null, q.shape[1] ?? null, v.shape?.[2] ?? null];
  return node.emitOne(inputs, { dtype: q.dtype, shape }, attributes);
}

/** Graph values holding one weight in MatMulNBits layout (see src/weights/quantize.ts). */
export interface QuantizedWeightValues {
  data: Value;
  scales: Value;
  zeroPoints?: Value;
  n: number;
  k: number;
  bits: 4 | 8;
  blockSize: number;
}

export interface MatMulNBitsOptions {
  /** 0 = float32 activations (exact w.r.t. dequantized weights); 4 = int8 activations (faster). */
  accuracyLevel?: 0 | 1 | 2 | 3 | 4;
  bias?: Value;
  name?: string;
}

/** Y = A·Wᵀ (+ bias) with W [N, K] block-quantized; A [..., K] → Y [..., N]. */
export function matMulNBits(g: GraphBuilder, a: Value, w: QuantizedWeightValues, options: MatMulNBitsOptions = {}): Value {
  const node = g.op('MatMulNBits', options.name, MICROSOFT_DOMAIN);
  if (a.dtype !== 'float32') node.fail(`A must be float32, got ${a}`);
  const kBlocks = Math.ceil(w.k / w.blockSize);
  const expectData = [w.n, kBlocks, (w.blockSize * w.bits) / 8];
  if (w.data.dtype !== 'uint8' || w.data.shape?.join(',') !== expectData.join(',')) {
    node.fail(`B must be uint8${formatShape(expectData)}, got ${w.data}`);
  }
  if (w.scales.dtype !== 'float32' || w.scales.shape?.join(',') !== String(w.n * kBlocks)) {
    node.fail(`scales must be float32[${w.n * kBlocks}], got ${w.scales}`);
  }
  if (w.zeroPoints !== undefined) {
    const zpLength = w.n * Math.ceil((kBlocks * w.bits) / 8);
    if (w.zeroPoints.dtype !== 'uint8' || w.zeroPoints.shape?.join(',') !== String(zpLength)) {
      node.fail(`zero points must be uint8[${zpLength}], got ${w.zeroPoints}`);
    }
  }
  const features = a.shape?.[a.shape.length - 1] ?? null;
  if (dimsConflict(features, w.k)) node.fail(`A ${a} does not end in K=${w.k}`);
  if (options.bias !== undefined && (options.bias.dtype !== 'float32' || dimsConflict(options.bias.shape?.[0] ?? null, w.n))) {
    node.fail(`bias must be float32[${w.n}], got ${options.bias}`);
  }
  const inputs = [a, w.data, w.scales, w.zeroPoints ?? null, null, options.bias ?? null];
  const shape = a.shape === null ? null : [...a.shape.slice(0, -1), w.n];
  return node.emitOne(
    inputs,
    { dtype: 'float32', shape },
    {
      K: attr.int(w.k),
      N: attr.int(w.n),
      bits: attr.int(w.bits),
      block_size: attr.int(w.blockSize),
      accuracy_level: attr.int(options.accuracyLevel ?? 4),
    },
  );
}
