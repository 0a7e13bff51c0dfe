/**
 * Low-rank (LoRA) inputs shared by the models: every linear y = x·Wᵀ + b gets run-time
 * inputs `lora.<linear>.down` [r, in], `.up` [out, r] (the LoRA A and B orientations, so
 * LoRA files need no transposing), `.slot` [r] (int64, symbolic rank), `.factor` [r] (each
 * rank's fixed factor, α/r) and `.bias` [slots, out], and the graph has one `lora_scales`
 * [slots] input, so
 *   y = x·Wᵀ + (b + lora_scales·bias) + ((x·downᵀ) ⊙ lora_scales[slot] ⊙ factor)·upᵀ.
 * Each LoRA owns a slot: changing a strength rebinds only `lora_scales` (a few bytes);
 * changing LoRAs rebinds the per-linear inputs; neither rebuilds a session.
 * No update is fed as one zero rank in one slot of strength 0, not as empty tensors: a MatMul
 * with an inner dimension of 0 crashes onnxruntime's WebGPU provider (docs/webgpu.md, finding 2),
 * and adding x·0 changes nothing.
 */
import type { GraphBuilder, Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import { float32Tensor, int64Tensor, type TensorMap } from '../../onnx/tensor-data.js';
import type { KeptView } from '../../onnx/worker-protocol.js';

export interface LowRankLinear {
  name: string;
  inFeatures: number;
  outFeatures: number;
}

/**
 * One linear's update: down [r, in], up [out, r], the LoRA slot of each rank (default 0), each
 * rank's fixed factor such as α/r (default 1), and per-slot bias rows [slots, out].
 */
export interface LowRankUpdate {
  down: Float32Array;
  up: Float32Array;
  rank: number;
  slots?: ArrayLike<number>;
  factors?: Float32Array;
  bias?: Float32Array;
  /**
   * down and up from arrays kept in the inference worker instead (`down` and `up` are then
   * empty): arrays `down` and `up` of `key`, up's rows starting at float `upOffset`.
   */
  kept?: { key: string; down: number; up: number; upOffset: number };
}

/** Every linear's update and the strength of each slot (one per LoRA). */
export interface LowRankState {
  updates: ReadonlyMap<string, LowRankUpdate>;
  scales: readonly number[];
}

export const NO_LOW_RANK: LowRankState = { updates: new Map(), scales: [] };

export class LowRankError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LowRankError';
  }
}

export const LORA_SCALES_INPUT = 'lora_scales';
export const loraInputNames = (linear: string) => ({
  down: `lora.${linear}.down`,
  up: `lora.${linear}.up`,
  slot: `lora.${linear}.slot`,
  factor: `lora.${linear}.factor`,
  bias: `lora.${linear}.bias`,
});

const scalesInputs = new WeakMap<GraphBuilder, { scales: Value; row: Value }>();

/** The graph's one `lora_scales` input, and the same as a [1, slots] row. */
function slotScales(g: GraphBuilder): { scales: Value; row: Value } {
  let entry = scalesInputs.get(g);
  if (entry === undefined) {
    const scales = g.input(LORA_SCALES_INPUT, 'float32', ['lora_slots']);
    entry = { scales, row: op.unsqueeze(g, scales, [0], 'lora_scales_row') };
    scalesInputs.set(g, entry);
  }
  return entry;
}

/** Declares a linear's low-rank inputs: `bias` [out] to add to the base bias, `apply` adds the update to y. */
export function lowRankInputs(g: GraphBuilder, spec: LowRankLinear): { bias: Value; apply(x: Value, y: Value): Value } {
  const names = loraInputNames(spec.name);
  const rank = `rank.${spec.name}`;
  const { scales, row } = slotScales(g);
  const down = g.input(names.down, 'float32', [rank, spec.inFeatures]);
  const up = g.input(names.up, 'float32', [spec.outFeatures, rank]);
  const slot = g.input(names.slot, 'int64', [rank]);
  const factor = g.input(names.factor, 'float32', [rank]);
  const biasRows = g.input(names.bias, 'float32', ['lora_slots', spec.outFeatures]);
  const columnScales = op.mul(g, op.gather(g, scales, slot, 0, 'lora_slot_scales'), factor, 'lora_column_scales');
  return {
    bias: op.reshape(g, op.matmul(g, row, biasRows, 'lora_bias'), [spec.outFeatures], 'lora_bias_vector'),
    apply: (x, y) =>
      op.add(g, y, op.matmulTransposed(g, op.mul(g, op.matmulTransposed(g, x, down, 'lora_down'), columnScales, 'lora_scale'), up, 'lora_up'), 'lora_add'),
  };
}

/** The slot strengths as fed: no LoRA is one slot of strength 0. */
const fedScales = (scales: readonly number[]): readonly number[] => (scales.length === 0 ? [0] : scales);

/** One zero rank in slot 0: the update of a linear no LoRA changes (fresh arrays: a bind may transfer them). */
function identityUpdate(spec: LowRankLinear, bias: Float32Array | undefined): LowRankUpdate {
  return { rank: 1, slots: [0], factors: new Float32Array(1), down: new Float32Array(spec.inFeatures), up: new Float32Array(spec.outFeatures), bias };
}

/** Feeds binding only the slot strengths (a strength change). */
export function lowRankScaleFeeds(scales: readonly number[]): TensorMap {
  if (!scales.every(Number.isFinite)) throw new LowRankError(`LoRA strengths must be finite numbers, got ${JSON.stringify(scales)}`);
  const fed = fedScales(scales);
  return { [LORA_SCALES_INPUT]: float32Tensor([fed.length], Float32Array.from(fed)) };
}

/** Feeds for every linear (the given updates, rank 0 and zero bias elsewhere) and the slot strengths. */
export function lowRankFeeds(linears: readonly LowRankLinear[], state: LowRankState): TensorMap {
  const known = new Set(linears.map((s) => s.name));
  for (const name of state.updates.keys()) {
    if (!known.has(name)) throw new LowRankError(`low-rank update for unknown linear "${name}"`);
  }
  const slotCount = fedScales(state.scales).length;
  const feeds: TensorMap = lowRankScaleFeeds(state.scales);
  for (const spec of linears) {
    const given = state.updates.get(spec.name);
    const update = given === undefined || given.rank === 0 ? identityUpdate(spec, given?.bias) : given;
    const where = `low-rank update for "${spec.name}"`;
    const sent = update.kept === undefined;
    if (sent && (update.down.length !== spec.inFeatures * update.rank || update.up.length !== update.rank * spec.outFeatures)) {
      throw new LowRankError(`${where}: down must be [${update.rank}, ${spec.inFeatures}] and up [${spec.outFeatures}, ${update.rank}]`);
    }
    const slots = update.slots ?? new Array<number>(update.rank).fill(0);
    if (slots.length !== update.rank || Array.from(slots).some((s) => !Number.isInteger(s) || s < 0 || s >= slotCount)) {
      throw new LowRankError(`${where}: needs a slot in 0..${slotCount - 1} for each of its ${update.rank} rank columns`);
    }
    if (update.factors !== undefined && update.factors.length !== update.rank) throw new LowRankError(`${where}: factors must be [${update.rank}]`);
    if (update.bias !== undefined && update.bias.length !== slotCount * spec.outFeatures) {
      throw new LowRankError(`${where}: bias must be [${slotCount}, ${spec.outFeatures}]`);
    }
    const names = loraInputNames(spec.name);
    if (sent) {
      feeds[names.down] = float32Tensor([update.rank, spec.inFeatures], update.down);
      feeds[names.up] = float32Tensor([spec.outFeatures, update.rank], update.up);
    }
    feeds[names.slot] = int64Tensor([update.rank], Array.from(slots));
    feeds[names.factor] = float32Tensor([update.rank], update.factors ?? new Float32Array(update.rank).fill(1));
    feeds[names.bias] = float32Tensor([slotCount, spec.outFeatures], update.bias ?? new Float32Array(slotCount * spec.outFeatures));
  }
  return feeds;
}

/** Inputs fed from arrays kept in the worker: down and up of every update that has `kept`. */
export function lowRankViews(linears: readonly LowRankLinear[], state: LowRankState): Record<string, KeptView> {
  const views: Record<string, KeptView> = {};
  for (const spec of linears) {
    const update = state.updates.get(spec.name);
    if (update?.kept === undefined) continue;
    const { key, down, up, upOffset } = update.kept;
    const names = loraInputNames(spec.name);
    views[names.down] = { key, array: down, offset: 0, length: update.rank * spec.inFeatures, dims: [update.rank, spec.inFeatures] };
    views[names.up] = { key, array: up, offset: upOffset, length: spec.outFeatures * update.rank, dims: [spec.outFeatures, update.rank] };
  }
  return views;
}
