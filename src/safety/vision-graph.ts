/**
 * Graph pieces shared by the two safety models, both vision transformers
 * (golden/safety/README.md §3): patch tokens with a class token and learned positions, and
 * pre-LN encoder layers x += out(MHA(LN₁(x))); x += fc2(act(fc1(LN₂(x)))). The models differ
 * only in key names, LayerNorm eps, the activation and what surrounds the encoder.
 */
import type { GraphBuilder, Value } from '../onnx/graph.js';
import * as op from '../onnx/ops/index.js';
import { externalRef, floatWeight } from '../onnx/weights.js';
import type { TensorInfo } from '../weights/safetensors.js';

/** A float32 view of a stored tensor; matrices pass the activation they multiply as `anchor`. */
export type Weights = (name: string, anchor?: Value) => Value;

export function storedWeights(g: GraphBuilder, locate: (name: string) => TensorInfo): Weights {
  return (name, anchor) => floatWeight(g, name, externalRef(locate(name)), anchor);
}

export interface PatchEmbedding {
  patch: number;
  hidden: number;
  tokens: number;
  /** Conv weight [H, 3, P, P] and optional bias. */
  weight: string;
  bias: string | null;
  /** Class token (H values in any shape) and positions (T·H values). */
  classToken: string;
  positions: string;
}

/**
 * pixels [B, 3, S, S] → conv with stride P → [B, N, H] (patch index row·(S/P) + col), the class
 * token in front, plus the positions → [B, T, H]. The class token goes in as a zero row padded
 * in front and added with the positions (0 + v = v exactly), so the batch size is never needed.
 */
export function patchTokens(g: GraphBuilder, pixels: Value, spec: PatchEmbedding, weights: Weights): Value {
  const { patch, hidden, tokens } = spec;
  return g.scope('embeddings', () => {
    const conv = op.conv(g, pixels, weights(spec.weight, pixels), spec.bias === null ? null : weights(spec.bias), { strides: [patch, patch] });
    const patches = op.transpose(g, op.reshape(g, conv, [0, hidden, tokens - 1]), [0, 2, 1]);
    const classRow = op.pad(g, op.reshape(g, weights(spec.classToken), [1, hidden]), [0, 0, tokens - 1, 0]);
    const table = op.add(g, classRow, op.reshape(g, weights(spec.positions), [tokens, hidden]));
    return op.add(g, op.pad(g, patches, [0, 1, 0, 0, 0, 0]), table);
  });
}

export function layerNorm(g: GraphBuilder, x: Value, module: string, eps: number, weights: Weights): Value {
  return op.layerNorm(g, x, { scale: weights(`${module}.weight`), bias: weights(`${module}.bias`), epsilon: eps, name: module });
}

/** x·Wᵀ (+ b) for a torch Linear stored as `module`.weight [out, in] and `module`.bias. */
export function linear(g: GraphBuilder, x: Value, module: string, weights: Weights, bias = true): Value {
  const y = op.matmulTransposed(g, x, weights(`${module}.weight`, x), module);
  return bias ? op.add(g, y, weights(`${module}.bias`), `${module}/bias`) : y;
}

/** Module paths of one encoder layer. */
export interface EncoderLayer {
  norm1: string;
  q: string;
  k: string;
  v: string;
  out: string;
  norm2: string;
  fc1: string;
  fc2: string;
}

export interface Encoder {
  heads: number;
  eps: number;
  activation: 'quick_gelu' | 'gelu';
  qkvBias: boolean;
  layers: readonly EncoderLayer[];
}

/** The encoder layers in order (no final norm); attention is unmasked with scale head_dim^−½. */
export function encoder(g: GraphBuilder, x: Value, spec: Encoder, weights: Weights): Value {
  let h = x;
  spec.layers.forEach((layer, i) => {
    h = g.scope(`layer${i}`, () => {
      const a = layerNorm(g, h, layer.norm1, spec.eps, weights);
      const qkv = [layer.q, layer.k, layer.v].map((m) => linear(g, a, m, weights, spec.qkvBias)) as [Value, Value, Value];
      const attended = op.add(g, h, linear(g, op.multiHeadAttention(g, ...qkv, { numHeads: spec.heads }), layer.out, weights));
      const f = linear(g, layerNorm(g, attended, layer.norm2, spec.eps, weights), layer.fc1, weights);
      // quick_gelu(z) = z·σ(1.702z) (CLIP); gelu is the exact erf form (ViT).
      const act = spec.activation === 'quick_gelu' ? op.mul(g, f, op.sigmoid(g, op.mul(g, f, 1.702))) : op.gelu(g, f, 'none');
      return op.add(g, attended, linear(g, act, layer.fc2, weights));
    });
  });
  return h;
}
