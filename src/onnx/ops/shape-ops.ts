/** Layout, indexing and type-conversion ops. Static shape arguments become int64 constants. */
import { attr, type Dim } from '../onnx-proto.js';
import { ONNX_DATA_TYPE, type DType } from '../dtype.js';
import type { GraphBuilder, PendingNode, Value } from '../graph.js';
import { dimsConflict, formatShape, normalizeAxis, staticSize, unifyDims, type Shape } from '../shape.js';

function axisOrFail(node: PendingNode, x: Value, axis: number, rank = x.rank): number | null {
  if (rank === null) return null;
  const a = normalizeAxis(axis, rank);
  if (a === null) node.fail(`axis ${axis} out of range for ${x}`);
  return a;
}

/**
 * Reshape to a static target (ONNX semantics: 0 copies the input dim, -1 is inferred).
 * A Value target gives an output of unknown shape.
 */
export function reshape(g: GraphBuilder, x: Value, target: readonly number[] | Value, name?: string): Value {
  const node = g.op('Reshape', name);
  if (!Array.isArray(target)) {
    return node.emitOne([x, target as Value], { dtype: x.dtype, shape: null });
  }
  const dims = target as readonly number[];
  if (dims.filter((d) => d === -1).length > 1) node.fail(`at most one -1 allowed in ${formatShape(dims)}`);
  if (dims.some((d) => !Number.isInteger(d) || d < -1)) node.fail(`invalid target shape ${formatShape(dims)}`);
  let shape: Dim[] | null = dims.every((d) => d > 0) ? [...dims] : null;
  if (x.shape !== null) {
    const input = x.shape;
    shape = dims.map((d, i) => {
      if (d !== 0) return d;
      if (i >= input.length) node.fail(`0 at position ${i} has no input dim to copy from ${x}`);
      return input[i] ?? null;
    });
    const inputSize = staticSize(input);
    const known = shape.filter((d) => d !== -1);
    const knownSize = staticSize(known);
    const inferred = shape.indexOf(-1);
    if (inferred >= 0) {
      if (inputSize !== null && knownSize !== null) {
        if (knownSize === 0 || inputSize % knownSize !== 0) {
          node.fail(`cannot reshape ${x} to ${formatShape(dims)}`);
        }
        shape[inferred] = inputSize / knownSize;
      } else {
        shape[inferred] = null;
      }
    } else if (inputSize !== null && knownSize !== null && inputSize !== knownSize) {
      node.fail(`cannot reshape ${x} (${inputSize} elements) to ${formatShape(shape)} (${knownSize})`);
    }
  }
  return node.emitOne([x, g.int64s(dims)], { dtype: x.dtype, shape });
}

export function transpose(g: GraphBuilder, x: Value, perm: readonly number[], name?: string): Value {
  const node = g.op('Transpose', name);
  const sorted = [...perm].sort((a, b) => a - b);
  if (!sorted.every((p, i) => p === i)) node.fail(`perm ${formatShape(perm)} is not a permutation`);
  if (x.rank !== null && x.rank !== perm.length) node.fail(`perm ${formatShape(perm)} does not match ${x}`);
  const shape = x.shape === null ? null : perm.map((p) => x.shape?.[p] ?? null);
  return node.emitOne([x], { dtype: x.dtype, shape }, { perm: attr.ints(perm) });
}

export function concat(g: GraphBuilder, values: readonly Value[], axis: number, name?: string): Value {
  const node = g.op('Concat', name);
  const first = values[0];
  if (first === undefined) return node.fail('needs at least one input');
  let shape: Dim[] | null = first.shape === null ? null : [...first.shape];
  const a = axisOrFail(node, first, axis);
  for (const v of values) {
    if (v.dtype !== first.dtype) node.fail(`input dtypes differ: ${first} and ${v}`);
    if (shape === null || v.shape === null || a === null) {
      shape = null;
      continue;
    }
    if (v.shape.length !== shape.length) node.fail(`input ranks differ: ${first} and ${v}`);
    shape = shape.map((d, i) => {
      const other = v.shape?.[i] ?? null;
      if (i !== a && dimsConflict(d, other)) node.fail(`dim ${i} differs between ${first} and ${v}`);
      return i === a ? d : unifyDims(d, other);
    });
  }
  if (shape !== null && a !== null) {
    const sizes = values.map((v) => v.shape?.[a] ?? null);
    shape[a] = sizes.every((s) => typeof s === 'number') ? (sizes as number[]).reduce((s, d) => s + d, 0) : null;
  }
  return node.emitOne(values, { dtype: first.dtype, shape }, { axis: attr.int(axis) });
}

/** Splits along `axis` into pieces of the given sizes. */
export function split(g: GraphBuilder, x: Value, axis: number, sizes: readonly number[], name?: string): Value[] {
  const node = g.op('Split', name);
  const a = axisOrFail(node, x, axis);
  if (sizes.length === 0 || sizes.some((s) => !Number.isInteger(s) || s < 0)) node.fail(`invalid split sizes ${formatShape(sizes)}`);
  const total = sizes.reduce((s, d) => s + d, 0);
  const dim = a === null ? null : (x.shape?.[a] ?? null);
  if (typeof dim === 'number' && dim !== total) node.fail(`sizes ${formatShape(sizes)} sum to ${total}, but axis ${axis} of ${x} is ${dim}`);
  const outputs = sizes.map((size) => ({
    dtype: x.dtype,
    shape: x.shape === null || a === null ? null : x.shape.map((d, i) => (i === a ? size : d)),
  }));
  return node.emit([x, g.int64s(sizes)], outputs, { axis: attr.int(axis) });
}

export interface SliceSpec {
  starts: readonly number[];
  ends: readonly number[];
  axes: readonly number[];
  steps?: readonly number[];
}

function slicedLength(dim: number, start: number, end: number, step: number): number {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  const norm = (v: number) => (v < 0 ? v + dim : v);
  if (step > 0) {
    const s = clamp(norm(start), 0, dim);
    const e = clamp(norm(end), 0, dim);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  const s = clamp(norm(start), -1, dim - 1);
  const e = clamp(norm(end), -1, dim - 1);
  return Math.max(0, Math.ceil((s - e) / -step));
}

export function slice(g: GraphBuilder, x: Value, spec: SliceSpec, name?: string): Value {
  const node = g.op('Slice', name);
  const steps = spec.steps ?? spec.axes.map(() => 1);
  if (spec.starts.length !== spec.axes.length || spec.ends.length !== spec.axes.length || steps.length !== spec.axes.length) {
    node.fail('starts, ends, axes and steps must have the same length');
  }
  if (steps.some((s) => s === 0)) node.fail('steps must be non-zero');
  let shape: Dim[] | null = x.shape === null ? null : [...x.shape];
  spec.axes.forEach((axis, i) => {
    const a = axisOrFail(node, x, axis);
    if (shape === null || a === null) return;
    const dim = shape[a];
    shape[a] = typeof dim === 'number' ? slicedLength(dim, spec.starts[i] ?? 0, spec.ends[i] ?? 0, steps[i] ?? 1) : null;
  });
  if (x.shape === null) shape = null;
  return node.emitOne([x, g.int64s(spec.starts), g.int64s(spec.ends), g.int64s(spec.axes), g.int64s(steps)], {
    dtype: x.dtype,
    shape,
  });
}

export function gather(g: GraphBuilder, x: Value, indices: Value, axis = 0, name?: string): Value {
  const node = g.op('Gather', name);
  if (indices.dtype !== 'int64' && indices.dtype !== 'int32') node.fail(`indices must be int32/int64, got ${indices}`);
  const a = axisOrFail(node, x, axis);
  const shape = x.shape === null || indices.shape === null || a === null ? null : [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  return node.emitOne([x, indices], { dtype: x.dtype, shape }, { axis: attr.int(axis) });
}

export function expand(g: GraphBuilder, x: Value, target: readonly number[], name?: string): Value {
  const node = g.op('Expand', name);
  const shape = node.broadcast([x.shape, target]);
  return node.emitOne([x, g.int64s(target)], { dtype: x.dtype, shape });
}

export function where(g: GraphBuilder, condition: Value, a: Value, b: Value, name?: string): Value {
  const node = g.op('Where', name);
  if (condition.dtype !== 'bool') node.fail(`condition must be bool, got ${condition}`);
  if (a.dtype !== b.dtype) node.fail(`branch dtypes differ: ${a} and ${b}`);
  const shape = node.broadcast([condition.shape, a.shape, b.shape]);
  return node.emitOne([condition, a, b], { dtype: a.dtype, shape });
}

export function cast(g: GraphBuilder, x: Value, to: DType, name?: string): Value {
  const node = g.op('Cast', name);
  return node.emitOne([x], { dtype: to, shape: x.shape }, { to: attr.int(ONNX_DATA_TYPE[to]) });
}

export function unsqueeze(g: GraphBuilder, x: Value, axes: readonly number[], name?: string): Value {
  const node = g.op('Unsqueeze', name);
  let shape: Dim[] | null = null;
  if (x.shape !== null) {
    const rank = x.shape.length + axes.length;
    const normalized = axes.map((axis) => axisOrFail(node, x, axis, rank) as number);
    if (new Set(normalized).size !== normalized.length) node.fail(`repeated axes ${formatShape(axes)}`);
    const rest = [...x.shape];
    shape = Array.from({ length: rank }, (_, i) => (normalized.includes(i) ? 1 : (rest.shift() ?? null)));
  }
  return node.emitOne([x, g.int64s(axes)], { dtype: x.dtype, shape });
}

export function squeeze(g: GraphBuilder, x: Value, axes: readonly number[], name?: string): Value {
  const node = g.op('Squeeze', name);
  let shape: Shape | null = null;
  if (x.shape !== null) {
    const normalized = axes.map((axis) => axisOrFail(node, x, axis) as number);
    for (const a of normalized) {
      const d = x.shape[a] ?? null;
      if (typeof d === 'number' && d !== 1) node.fail(`axis ${a} of ${x} has size ${d}, not 1`);
    }
    shape = x.shape.filter((_, i) => !normalized.includes(i));
  }
  return node.emitOne([x, g.int64s(axes)], { dtype: x.dtype, shape });
}

export function reduceMean(g: GraphBuilder, x: Value, axes: readonly number[], keepDims = true, name?: string): Value {
  const node = g.op('ReduceMean', name);
  let shape: Dim[] | null = null;
  if (x.shape !== null) {
    const normalized = axes.map((axis) => axisOrFail(node, x, axis) as number);
    shape = x.shape.flatMap((d, i) => (normalized.includes(i) ? (keepDims ? [1] : []) : [d]));
  }
  return node.emitOne([x, g.int64s(axes)], { dtype: x.dtype, shape }, { keepdims: attr.int(keepDims ? 1 : 0) });
}

/** The run-time shape of `x` as a 1-D int64 tensor. */
export function shapeOf(g: GraphBuilder, x: Value, name?: string): Value {
  return g.op('Shape', name).emitOne([x], { dtype: 'int64', shape: [x.rank] });
}

/** Constant-mode Pad with zeros: `pads` = [begin₀, …, begin_{r−1}, end₀, …, end_{r−1}] (r = the rank of `x`). */
export function pad(g: GraphBuilder, x: Value, pads: readonly number[], name?: string): Value {
  const node = g.op('Pad', name);
  if (x.rank !== null && pads.length !== 2 * x.rank) node.fail(`${pads.length} pads for ${x}, need ${2 * x.rank}`);
  if (pads.some((p) => !Number.isInteger(p) || p < 0)) node.fail(`pads must be non-negative integers, got ${formatShape(pads)}`);
  const rank = pads.length / 2;
  const shape =
    x.shape === null
      ? null
      : x.shape.map((d, i) => {
          const added = (pads[i] as number) + (pads[i + rank] as number);
          return added === 0 ? d : typeof d === 'number' ? d + added : null;
        });
  return node.emitOne([x, g.int64s(pads)], { dtype: x.dtype, shape }, { mode: attr.string('constant') });
}
