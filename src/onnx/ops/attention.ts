/**
 * Scaled dot-product attention in the form that is correct on the graph's device:
 * - CPU: com.microsoft MultiHeadAttention, which never materializes the S_q×S_kv scores
 *   (docs/onnxruntime.md §5);
 * - WebGPU: the explicit form MatMul → Softmax → MatMul. onnxruntime's WebGPU
 *   MultiHeadAttention switches to its FlashAttention shader from 32 keys on, and that shader
 *   returns wrong values on a subgroup size of 8 (docs/webgpu.md, finding 1). The explicit form
 *   holds the scores of HEADS_PER_CHUNK heads at a time: one buffer per chunk, which must stay
 *   under WebGPU's 4 GiB buffer limit (finding 6).
 */
import { attr } from '../onnx-proto.js';
import type { GraphBuilder, Value } from '../graph.js';
import { multiHeadAttention, type AttentionOptions } from './contrib.js';
import { add, mul, softmax } from './elementwise.js';
import { matmul } from './linalg.js';
import { concat, reshape, shapeOf, split, transpose } from './shape-ops.js';

/**
 * Heads whose scores are computed together. FLUX's longest sequence (1440², 8100 image + 512
 * text tokens) then makes 4 · 8612² floats = 1.1 GiB per chunk; all 24 heads at once would be
 * 6.6 GiB, more than a WebGPU buffer may hold.
 */
export const HEADS_PER_CHUNK = 4;

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
  const chunks = Array.from({ length: Math.ceil(heads / HEADS_PER_CHUNK) }, (_, i) => Math.min(HEADS_PER_CHUNK, heads - i * HEADS_PER_CHUNK));
  // [B, H, S, D] (keys [B, H, D, S]) cut into chunks of heads; a single chunk is the tensor itself.
  const perHead = (x: Value, perm: number[], name: string) => {
    const t = transpose(g, reshape(g, x, [0, 0, heads, headDim], `${name}_heads`), perm, name);
    return chunks.length === 1 ? [t] : split(g, t, 1, chunks, `${name}_chunks`);
  };
  const [qs, ks, vs] = [perHead(q, [0, 2, 1, 3], 'q'), perHead(k, [0, 2, 3, 1], 'k_t'), perHead(v, [0, 2, 1, 3], 'v')];
  const bias = options.bias;
  const biasPerHead = bias !== undefined && bias.shape?.[1] === heads && chunks.length > 1;
  const biases = biasPerHead ? split(g, bias, 1, chunks, 'bias_chunks') : chunks.map(() => bias);
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  const outs = chunks.map((_, i) => {
    const scores = mul(g, matmul(g, qs[i] as Value, ks[i] as Value, 'scores'), scale, 'scaled');
    const chunkBias = biases[i];
    let logits = chunkBias === undefined ? scores : add(g, scores, chunkBias, 'biased');
    if (options.causal) logits = add(g, logits, causalMask(g, logits), 'causal');
    return matmul(g, softmax(g, logits, -1, 'weights'), vs[i] as Value, 'weighted');
  });
  const out = outs.length === 1 ? (outs[0] as Value) : concat(g, outs, 1, 'heads');
  return reshape(g, transpose(g, out, [0, 2, 1, 3], 'merge'), [0, 0, hidden], 'out');
}

/** −∞ above the diagonal of the last two axes (key after query), 0 elsewhere, shaped like `logits`. */
function causalMask(g: GraphBuilder, logits: Value): Value {
  const full = g.op('Expand', 'minus_inf').emitOne([g.scalar(-Infinity), shapeOf(g, logits)], { dtype: 'float32', shape: logits.shape });
  return g.op('Trilu', 'above_diagonal').emitOne([full, g.scalar(1, 'int64')], { dtype: 'float32', shape: logits.shape }, { upper: attr.int(1) });
}
