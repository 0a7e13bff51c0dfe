/**
 * Scaled dot-product attention in the form that is correct on the graph's device:
 * - CPU: com.microsoft MultiHeadAttention, which never materializes the S_q×S_kv scores
 *   (docs/onnxruntime.md §5);
 * - WebGPU: the explicit form MatMul → Softmax → MatMul. onnxruntime's WebGPU
 *   MultiHeadAttention switches to its FlashAttention shader from 32 keys on, and that shader
 *   returns wrong values on a subgroup size of 8 (docs/webgpu.md, finding 1). The explicit form
 *   holds the [B, heads, S_q, S_kv] scores once (1.9 GiB per block at 1024², 24 heads).
 */
import { attr } from '../onnx-proto.js';
import type { GraphBuilder, Value } from '../graph.js';
import { multiHeadAttention, type AttentionOptions } from './contrib.js';
import { add, mul, softmax } from './elementwise.js';
import { matmul } from './linalg.js';
import { reshape, shapeOf, transpose } from './shape-ops.js';

/** softmax(q·kᵀ·scale + bias)·v per head, q [B, S_q, H·D], k/v [B, S_kv, H·D] → [B, S_q, H·D]. */
export function attention(g: GraphBuilder, q: Value, k: Value, v: Value, options: AttentionOptions): Value {
  // The contrib op checks the shapes and options for both forms.
  if (g.device === 'cpu') return multiHeadAttention(g, q, k, v, options);
  return g.scope(options.name ?? 'Attention', () => explicitAttention(g, q, k, v, options));
}

function explicitAttention(g: GraphBuilder, q: Value, k: Value, v: Value, options: AttentionOptions): Value {
  const hidden = q.shape?.[2];
  if (typeof hidden !== 'number') return g.op('Attention').fail(`needs a static width, got ${q}`);
  const heads = options.numHeads;
  const headDim = hidden / heads;
  if (!Number.isInteger(headDim)) return g.op('Attention').fail(`hidden size ${hidden} is not divisible by ${heads} heads`);
  const split = (x: Value, perm: number[], name: string) => transpose(g, reshape(g, x, [0, 0, heads, headDim], `${name}_heads`), perm, name);
  const scores = mul(g, matmul(g, split(q, [0, 2, 1, 3], 'q'), split(k, [0, 2, 3, 1], 'k_t'), 'scores'), options.scale ?? 1 / Math.sqrt(headDim), 'scaled');
  let logits = options.bias === undefined ? scores : add(g, scores, options.bias, 'biased');
  if (options.causal) logits = add(g, logits, causalMask(g, logits), 'causal');
  const weights = softmax(g, logits, -1, 'weights');
  const out = transpose(g, matmul(g, weights, split(v, [0, 2, 1, 3], 'v'), 'weighted'), [0, 2, 1, 3], 'merge');
  return reshape(g, out, [0, 0, hidden], 'out');
}

/** −∞ above the diagonal of the last two axes (key after query), 0 elsewhere, shaped like `logits`. */
function causalMask(g: GraphBuilder, logits: Value): Value {
  const full = g.op('Expand', 'minus_inf').emitOne([g.scalar(-Infinity), shapeOf(g, logits)], { dtype: 'float32', shape: logits.shape });
  return g.op('Trilu', 'above_diagonal').emitOne([full, g.scalar(1, 'int64')], { dtype: 'float32', shape: logits.shape }, { upper: attr.int(1) });
}
