/**
 * Low-rank (LoRA) inputs shared by the models: every linear y = x·Wᵀ + b gets run-time
 * inputs `lora.<linear>.down` [in, r], `.up` [r, out] (symbolic rank) and `.bias` [out], so
 * y = x·Wᵀ + (b + bias) + (x·down)·up. Rank 0 and a zero bias are the identity; changing
 * LoRAs only rebinds inputs, never rebuilds a session.
 */
import type { GraphBuilder, Value } from '../onnx/graph.js';
import * as op from '../onnx/ops/index.js';
import { float32Tensor, type TensorMap } from '../onnx/tensor-data.js';

export interface LowRankLinear {
  name: string;
  inFeatures: number;
  outFeatures: number;
}

/** y += (x·down)·up (+ bias) for one linear; down [in, r], up [r, out], bias [out]. */
export interface LowRankUpdate {
  down: Float32Array;
  up: Float32Array;
  rank: number;
  bias?: Float32Array;
}

export class LowRankError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LowRankError';
  }
}

export const loraInputNames = (linear: string) => ({ down: `lora.${linear}.down`, up: `lora.${linear}.up`, bias: `lora.${linear}.bias` });

/** Declares a linear's low-rank inputs; `apply` adds the update to the base output y. */
export function lowRankInputs(g: GraphBuilder, spec: LowRankLinear): { bias: Value; apply(x: Value, y: Value): Value } {
  const names = loraInputNames(spec.name);
  const rank = `rank.${spec.name}`;
  const down = g.input(names.down, 'float32', [spec.inFeatures, rank]);
  const up = g.input(names.up, 'float32', [rank, spec.outFeatures]);
  return {
    bias: g.input(names.bias, 'float32', [spec.outFeatures]),
    apply: (x, y) => op.add(g, y, op.matmul(g, op.matmul(g, x, down, 'lora_down'), up, 'lora_up'), 'lora_add'),
  };
}

/** Feeds for every linear: the given updates, rank 0 and a zero bias elsewhere. */
export function lowRankFeeds(linears: readonly LowRankLinear[], updates: ReadonlyMap<string, LowRankUpdate>): TensorMap {
  const known = new Set(linears.map((s) => s.name));
  for (const name of updates.keys()) {
    if (!known.has(name)) throw new LowRankError(`low-rank update for unknown linear "${name}"`);
  }
  const feeds: TensorMap = {};
  for (const spec of linears) {
    const update = updates.get(spec.name) ?? { down: new Float32Array(0), up: new Float32Array(0), rank: 0 };
    if (update.down.length !== spec.inFeatures * update.rank || update.up.length !== update.rank * spec.outFeatures) {
      throw new LowRankError(`low-rank update for "${spec.name}": down must be [${spec.inFeatures}, ${update.rank}] and up [${update.rank}, ${spec.outFeatures}]`);
    }
    if (update.bias !== undefined && update.bias.length !== spec.outFeatures) {
      throw new LowRankError(`low-rank update for "${spec.name}": bias must be [${spec.outFeatures}]`);
    }
    const names = loraInputNames(spec.name);
    feeds[names.down] = float32Tensor([spec.inFeatures, update.rank], update.down);
    feeds[names.up] = float32Tensor([update.rank, spec.outFeatures], update.up);
    feeds[names.bias] = float32Tensor([spec.outFeatures], update.bias ?? new Float32Array(spec.outFeatures));
  }
  return feeds;
}
