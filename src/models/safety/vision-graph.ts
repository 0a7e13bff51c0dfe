/**
 * The tower both safety models share, a vision transformer (test/golden/data/safety/README.md §3): patch
 * tokens with a class token and learned positions, an optional LayerNorm, then pre-LN encoder
 * layers x += out(MHA(LN₁(x))); x += fc2(act(fc1(LN₂(x)))). The models differ only in key
 * names, stored shapes, LayerNorm eps, the activation and what surrounds the encoder.
 */
import type { GraphBuilder, Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import { externalRef, floatWeight } from '../common/stored-weights.js';
import type { TensorInfo } from '../../weights/safetensors.js';

/** A tower's configuration (transformers CLIPVisionConfig / ViTConfig). */
export interface TowerConfig {
  hidden: number;
  heads: number;
  intermediate: number;
  layers: number;
  imageSize: number;
  patchSize: number;
  eps: number;
  activation: 'quick_gelu' | 'gelu';
  qkvBias: boolean;
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

/** Where a tower's tensors are stored. */
export interface TowerNames {
  /** Conv weight [H, 3, P, P] and its bias, if it has one. */
  patchWeight: string;
  patchBias: string | null;
  classToken: string;
  positions: string;
  /** Class token and positions stored with batch axes ([1, 1, H], [1, T, H], as ViT) rather than as [H], [T, H] (CLIP). */
  batchedEmbeddings: boolean;
  /** The LayerNorm before the encoder (CLIP's pre_layrnorm), if any. */
  preNorm: string | null;
  layer(i: number): EncoderLayer;
}

/** A float32 view of a stored tensor; matrices pass the activation they multiply as `anchor`. */
export type Weights = (name: string, anchor?: Value) => Value;

export function storedWeights(g: GraphBuilder, locate: (name: string) => TensorInfo): Weights {
  return (name, anchor) => floatWeight(g, name, externalRef(locate(name)), anchor);
}

/** Class token + (S/P)² patches. */
export function tokenCount(c: TowerConfig): number {
  return (c.imageSize / c.patchSize) ** 2 + 1;
}

/** Adds `module`.weight [out, in] and, with `bias`, `module`.bias [out]; a norm is (module, size). */
export function addLinearShapes(shapes: Map<string, number[]>, module: string, out: number, inp: number | null, bias = true): void {
  shapes.set(`${module}.weight`, inp === null ? [out] : [out, inp]);
  if (bias) shapes.set(`${module}.bias`, [out]);
}

/** The stored shape of every tensor of the tower. */
export function towerShapes(c: TowerConfig, names: TowerNames): Map<string, number[]> {
  const h = c.hidden;
  const batched = names.batchedEmbeddings;
  const shapes = new Map<string, number[]>([
    [names.patchWeight, [h, 3, c.patchSize, c.patchSize]],
    [names.classToken, batched ? [1, 1, h] : [h]],
    [names.positions, batched ? [1, tokenCount(c), h] : [tokenCount(c), h]],
  ]);
  if (names.patchBias !== null) shapes.set(names.patchBias, [h]);
  if (names.preNorm !== null) addLinearShapes(shapes, names.preNorm, h, null);
  for (let i = 0; i < c.layers; i++) {
    const l = names.layer(i);
    for (const norm of [l.norm1, l.norm2]) addLinearShapes(shapes, norm, h, null);
    for (const m of [l.q, l.k, l.v]) addLinearShapes(shapes, m, h, h, c.qkvBias);
    addLinearShapes(shapes, l.out, h, h);
    addLinearShapes(shapes, l.fc1, c.intermediate, h);
    addLinearShapes(shapes, l.fc2, h, c.intermediate);
  }
  return shapes;
}

export function layerNorm(g: GraphBuilder, x: Value, module: string, eps: number, weights: Weights): Value {
  return op.layerNorm(g, x, { scale: weights(`${module}.weight`), bias: weights(`${module}.bias`), epsilon: eps, name: module });
}

/** x·Wᵀ (+ b) for a torch Linear stored as `module`.weight [out, in] and `module`.bias. */
export function linear(g: GraphBuilder, x: Value, module: string, weights: Weights, bias = true): Value {
  const y = op.matmulTransposed(g, x, weights(`${module}.weight`, x), module);
  return bias ? op.add(g, y, weights(`${module}.bias`), `${module}/bias`) : y;
}

/**
 * pixels [B, 3, S, S] → conv with stride P → [B, N, H] (patch index row·(S/P) + col), the class
 * token in front, plus the positions → [B, T, H]. The class token goes in as a zero row padded
 * in front and added with the positions (0 + v = v exactly), so the batch size is never needed.
 */
function patchTokens(g: GraphBuilder, pixels: Value, c: TowerConfig, names: TowerNames, weights: Weights): Value {
  const tokens = tokenCount(c);
  return g.scope('embeddings', () => {
    const bias = names.patchBias === null ? null : weights(names.patchBias);
    const conv = op.conv(g, pixels, weights(names.patchWeight, pixels), bias, { strides: [c.patchSize, c.patchSize] });
    const patches = op.transpose(g, op.reshape(g, conv, [0, c.hidden, tokens - 1]), [0, 2, 1]);
    const classRow = op.pad(g, op.reshape(g, weights(names.classToken), [1, c.hidden]), [0, 0, tokens - 1, 0]);
    const table = op.add(g, classRow, op.reshape(g, weights(names.positions), [tokens, c.hidden]));
    return op.add(g, op.pad(g, patches, [0, 1, 0, 0, 0, 0]), table);
  });
}

/** The encoder layers in order; attention is unmasked with scale head_dim^−½. */
function encoder(g: GraphBuilder, x: Value, c: TowerConfig, names: TowerNames, weights: Weights): Value {
  let h = x;
  for (let i = 0; i < c.layers; i++) {
    const layer = names.layer(i);
    h = g.scope(`layer${i}`, () => {
      const a = layerNorm(g, h, layer.norm1, c.eps, weights);
      const [q, k, v] = [layer.q, layer.k, layer.v].map((m) => linear(g, a, m, weights, c.qkvBias)) as [Value, Value, Value];
      const attended = op.add(g, h, linear(g, op.attention(g, q, k, v, { numHeads: c.heads }), layer.out, weights));
      const f = linear(g, layerNorm(g, attended, layer.norm2, c.eps, weights), layer.fc1, weights);
      // quick_gelu(z) = z·σ(1.702z) (CLIP); gelu is the exact erf form (ViT).
      const act = c.activation === 'quick_gelu' ? op.mul(g, f, op.sigmoid(g, op.mul(g, f, 1.702))) : op.gelu(g, f, 'none');
      return op.add(g, attended, linear(g, act, layer.fc2, weights));
    });
  }
  return h;
}

/** The tower from its `pixel_values` input: the embeddings, the encoder input (after the pre-norm, if any) and the encoder output. */
export function tower(g: GraphBuilder, c: TowerConfig, names: TowerNames, weights: Weights): { embeddings: Value; encoderInput: Value; encoded: Value } {
  const pixels = g.input('pixel_values', 'float32', ['batch', 3, c.imageSize, c.imageSize]);
  const embeddings = patchTokens(g, pixels, c, names, weights);
  const encoderInput = names.preNorm === null ? embeddings : layerNorm(g, embeddings, names.preNorm, c.eps, weights);
  return { embeddings, encoderInput, encoded: encoder(g, encoderInput, c, names, weights) };
}

/** x[:, 0]: the class token of each sequence, [B, H]. */
export function classToken(g: GraphBuilder, x: Value): Value {
  return op.squeeze(g, op.slice(g, x, { starts: [0], ends: [1], axes: [1] }), [1]);
}
