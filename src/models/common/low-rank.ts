/**
 * Low-rank (LoRA) inputs shared by the models: every linear y = x·Wᵀ + b gets run-time
 * inputs `lora.<linear>.down` [r, in], `.up` [out, r] (the LoRA A and B orientations, so
 * LoRA files need no transposing), `.scale` [r] (symbolic rank) and `.bias` [out], so
 *   y = x·Wᵀ + (b + bias) + ((x·downᵀ) ⊙ scale)·upᵀ.
 * Each LoRA owns a slot of strength s; the feeds fold the strengths in: a rank's scale is its slot's
 * strength times its fixed factor (α/r), the bias the strength-weighted sum of the slots' bias rows,
 * both computed here in float32 as the graph computed them before (docs/onnxruntime.md §10.12: two
 * inputs and four nodes per linear fewer halve the graph's session creation). Changing a strength
 * rebinds only the scale and bias vectors of the linears a LoRA updates; changing LoRAs rebinds the
 * per-linear inputs; neither rebuilds a session.
 * No update is fed as one zero rank of scale 0, not as empty tensors: a MatMul with an inner
 * dimension of 0 crashes onnxruntime's WebGPU provider (docs/webgpu.md, finding 2), and adding x·0
 * changes nothing.
 */
import type { GraphBuilder, Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import { float32Tensor, type TensorMap } from '../../onnx/tensor-data.js';
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

export const loraInputNames = (linear: string) => ({
  down: `lora.${linear}.down`,
  up: `lora.${linear}.up`,
  scale: `lora.${linear}.scale`,
  bias: `lora.${linear}.bias`,
});

/** Declares a linear's low-rank inputs: `bias` [out] to add to the base bias, `apply` adds the update to y. */
export function lowRankInputs(g: GraphBuilder, spec: LowRankLinear): { bias: Value; apply(x: Value, y: Value): Value } {
  const names = loraInputNames(spec.name);
  const rank = `rank.${spec.name}`;
  const down = g.input(names.down, 'float32', [rank, spec.inFeatures]);
  const up = g.input(names.up, 'float32', [spec.outFeatures, rank]);
  const scale = g.input(names.scale, 'float32', [rank]);
  return {
    bias: g.input(names.bias, 'float32', [spec.outFeatures]),
    apply: (x, y) =>
      op.add(g, y, op.matmulTransposed(g, op.mul(g, op.matmulTransposed(g, x, down, 'lora_down'), scale, 'lora_scale'), up, 'lora_up'), 'lora_add'),
  };
}

/** The slot strengths as used: no LoRA is one slot of strength 0; float32, as a graph input held them. */
function usedScales(scales: readonly number[]): Float32Array {
  if (!scales.every(Number.isFinite)) throw new LowRankError(`LoRA strengths must be finite numbers, got ${JSON.stringify(scales)}`);
  return Float32Array.from(scales.length === 0 ? [0] : scales);
}

/** One zero rank in slot 0: the update of a linear no LoRA changes (fresh arrays: a bind may transfer them). */
function identityUpdate(spec: LowRankLinear, bias: Float32Array | undefined): LowRankUpdate {
  return { rank: 1, slots: [0], factors: new Float32Array(1), down: new Float32Array(spec.inFeatures), up: new Float32Array(spec.outFeatures), bias };
}

/** Each rank's scale: its slot's strength times its factor (one float32 product). */
function rankScales(update: LowRankUpdate, strengths: Float32Array): Float32Array {
  const scale = new Float32Array(update.rank);
  for (let r = 0; r < update.rank; r++) scale[r] = (strengths[update.slots?.[r] ?? 0] as number) * (update.factors?.[r] ?? 1);
  return scale;
}

/** The bias delta [out]: Σ over slots of strength · bias row, accumulated in float32 in slot order (as the [1, slots] × [slots, out] MatMul did). */
function biasDelta(update: LowRankUpdate, strengths: Float32Array, outFeatures: number): Float32Array {
  const delta = new Float32Array(outFeatures);
  if (update.bias === undefined) return delta;
  for (let s = 0; s < strengths.length; s++) {
    const strength = strengths[s] as number;
    for (let o = 0; o < outFeatures; o++) delta[o] = (delta[o] as number) + Math.fround(strength * (update.bias[s * outFeatures + o] as number));
  }
  return delta;
}

/** The update fed for a linear: the given one, or rank 0 with its bias rows when there is none. */
function fedUpdate(spec: LowRankLinear, given: LowRankUpdate | undefined): LowRankUpdate {
  return given === undefined || given.rank === 0 ? identityUpdate(spec, given?.bias) : given;
}

/** A linear's inputs that depend on the strengths: its ranks' scales and its bias delta. */
function strengthFeeds(spec: LowRankLinear, update: LowRankUpdate, strengths: Float32Array): TensorMap {
  const names = loraInputNames(spec.name);
  return {
    [names.scale]: float32Tensor([update.rank], rankScales(update, strengths)),
    [names.bias]: float32Tensor([spec.outFeatures], biasDelta(update, strengths, spec.outFeatures)),
  };
}

/** What a strength change needs of a state: every update without its down and up matrices (which may have been moved to the worker). */
export function strengthState(state: LowRankState): LowRankState {
  const updates = new Map(
    [...state.updates].map(([name, { down: _down, up: _up, kept: _kept, ...rest }]) => [name, { ...rest, down: new Float32Array(0), up: new Float32Array(0) }]),
  );
  return { updates, scales: [...state.scales] };
}

/** Feeds binding the strengths `scales` (one per slot of `state`): the scale and bias vectors of the linears `state` updates. */
export function lowRankScaleFeeds(linears: readonly LowRankLinear[], state: LowRankState, scales: readonly number[]): TensorMap {
  const strengths = usedScales(scales);
  const slotCount = usedScales(state.scales).length;
  if (strengths.length !== slotCount) throw new LowRankError(`the bound LoRAs have ${slotCount} strengths, got ${scales.length}`);
  const feeds: TensorMap = {};
  for (const spec of linears) {
    const given = state.updates.get(spec.name);
    if (given === undefined) continue;
    Object.assign(feeds, strengthFeeds(spec, fedUpdate(spec, given), strengths));
  }
  return feeds;
}

/** Feeds for every linear (the given updates, rank 0 and zero bias elsewhere) at the state's strengths. */
export function lowRankFeeds(linears: readonly LowRankLinear[], state: LowRankState): TensorMap {
  const known = new Set(linears.map((s) => s.name));
  for (const name of state.updates.keys()) {
    if (!known.has(name)) throw new LowRankError(`low-rank update for unknown linear "${name}"`);
  }
  const strengths = usedScales(state.scales);
  const slotCount = strengths.length;
  const feeds: TensorMap = {};
  for (const spec of linears) {
    const update = fedUpdate(spec, state.updates.get(spec.name));
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
    Object.assign(feeds, strengthFeeds(spec, update, strengths));
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
