/** Matrix products. */
import { attr } from '../onnx-proto.js';
import { isFloatType } from '../dtype.js';
import { MICROSOFT_DOMAIN, type GraphBuilder, type Value } from '../graph.js';
import { dimsConflict, formatShape, unifyDims, type Shape } from '../shape.js';
import { transpose } from './shape-ops.js';

/** Numpy matmul over inputs of rank ≥ 2 (leading dims broadcast). */
export function matmul(g: GraphBuilder, a: Value, b: Value, name?: string): Value {
  const node = g.op('MatMul', name);
  if (a.dtype !== b.dtype) node.fail(`operand dtypes differ: ${a} and ${b}`);
  if (!isFloatType(a.dtype)) node.fail(`needs float operands, got ${a}`);
  let shape: Shape | null = null;
  if (a.shape !== null && b.shape !== null) {
    if (a.shape.length < 2 || b.shape.length < 2) node.fail(`operands must have rank ≥ 2: ${a} and ${b}`);
    const [m, k1] = a.shape.slice(-2);
    const [k2, n] = b.shape.slice(-2);
    if (dimsConflict(k1 ?? null, k2 ?? null)) {
      node.fail(`inner dimensions differ: ${formatShape(a.shape)} × ${formatShape(b.shape)}`);
    }
    const batch = node.broadcast([a.shape.slice(0, -2), b.shape.slice(0, -2)]);
    shape = batch === null ? null : [...batch, m ?? null, n ?? null];
  }
  return node.emitOne([a, b], { dtype: a.dtype, shape });
}

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  name?: string;
}

/** Y = alpha·op(A)·op(B) + beta·C over 2-D operands; C broadcasts to [M, N]. */
export function gemm(g: GraphBuilder, a: Value, b: Value, c: Value | null, options: GemmOptions = {}): Value {
  const node = g.op('Gemm', options.name);
  for (const v of [a, b, c]) {
    if (v === null) continue;
    if (v.dtype !== a.dtype || !isFloatType(v.dtype)) node.fail(`operands must share one float dtype: ${v}`);
  }
  if (a.rank !== null && a.rank !== 2) node.fail(`A must be 2-D, got ${a}`);
  if (b.rank !== null && b.rank !== 2) node.fail(`B must be 2-D, got ${b}`);
  let shape: Shape | null = null;
  if (a.shape !== null && b.shape !== null) {
    const [m, ka] = options.transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
    const [kb, n] = options.transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
    if (dimsConflict(ka ?? null, kb ?? null)) {
      node.fail(`inner dimensions differ: op(A)=${formatShape([m ?? null, ka ?? null])}, op(B)=${formatShape([kb ?? null, n ?? null])}`);
    }
    shape = [m ?? null, n ?? null];
    if (c !== null) {
      const cs = node.broadcast([c.shape, shape], 'C does not broadcast to the output: ');
      if (cs !== null && cs.length !== 2) node.fail(`C must broadcast to rank 2, got ${c}`);
      shape = cs === null ? shape : [unifyDims(shape[0] ?? null, cs[0] ?? null), unifyDims(shape[1] ?? null, cs[1] ?? null)];
    }
  }
  return node.emitOne(
    [a, b, c],
    { dtype: a.dtype, shape },
    {
      alpha: attr.float(options.alpha ?? 1),
      beta: attr.float(options.beta ?? 1),
      transA: attr.int(options.transA ? 1 : 0),
      transB: attr.int(options.transB ? 1 : 0),
    },
  );
}

/**
 * x·wᵀ for x [..., K] and a torch-Linear-layout weight w [N, K] → [..., N]. On the CPU:
 * com.microsoft FusedMatMul with transB (the weight is prepacked like a MatMul's). The WebGPU
 * provider has no FusedMatMul kernel (docs/webgpu.md, finding 7): there it is MatMul(x, Transpose(w)),
 * whose Transpose of a weight is folded once at load.
 */
export function matmulTransposed(g: GraphBuilder, x: Value, w: Value, name?: string): Value {
  const node = g.op(g.device === 'webgpu' ? 'MatMul' : 'FusedMatMul', name, g.device === 'webgpu' ? '' : MICROSOFT_DOMAIN);
  if (x.dtype !== 'float32' || w.dtype !== 'float32') node.fail(`needs float32 operands, got ${x} and ${w}`);
  if (w.rank !== 2) node.fail(`weight must be [N, K], got ${w}`);
  if (x.rank !== null && x.rank < 2) node.fail(`input must have rank ≥ 2, got ${x}`);
  const k = x.shape?.[x.shape.length - 1] ?? null;
  if (dimsConflict(k, w.shape?.[1] ?? null)) node.fail(`input ${x} does not match weight ${w}`);
  const shape = x.shape === null ? null : [...x.shape.slice(0, -1), w.shape?.[0] ?? null];
  if (g.device === 'webgpu') return node.emitOne([x, transpose(g, w, [1, 0], `${node.name}_weight_t`)], { dtype: 'float32', shape });
  return node.emitOne([x, w], { dtype: 'float32', shape }, { transB: attr.int(1), alpha: attr.float(1) });
}
