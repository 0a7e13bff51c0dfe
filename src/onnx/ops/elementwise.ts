/** Elementwise arithmetic and activations. Numbers are accepted as operands and become scalar constants. */
import { attr } from '../onnx-proto.js';
import { isFloatType } from '../dtype.js';
import type { GraphBuilder, PendingNode, Value } from '../graph.js';
import { normalizeAxis } from '../shape.js';

export type Operand = Value | number;

function toValue(g: GraphBuilder, node: PendingNode, operand: Operand, like: Value): Value {
  if (typeof operand !== 'number') return operand;
  if (like.dtype === 'float32' || like.dtype === 'int64') return g.scalar(operand, like.dtype);
  return node.fail(`numeric operand ${operand} needs a float32 or int64 partner, got ${like.dtype}`);
}

function binary(g: GraphBuilder, opType: string, a: Operand, b: Operand, name?: string): Value {
  const node = g.op(opType, name);
  if (typeof a === 'number' && typeof b === 'number') node.fail('at least one operand must be a graph value');
  const left = toValue(g, node, a, b as Value);
  const right = toValue(g, node, b, left);
  if (left.dtype !== right.dtype) {
    node.fail(`operand dtypes differ: ${left} and ${right}`);
  }
  const shape = node.broadcast([left.shape, right.shape]);
  return node.emitOne([left, right], { dtype: left.dtype, shape });
}

export const add = (g: GraphBuilder, a: Operand, b: Operand, name?: string): Value => binary(g, 'Add', a, b, name);
export const sub = (g: GraphBuilder, a: Operand, b: Operand, name?: string): Value => binary(g, 'Sub', a, b, name);
export const mul = (g: GraphBuilder, a: Operand, b: Operand, name?: string): Value => binary(g, 'Mul', a, b, name);
export const div = (g: GraphBuilder, a: Operand, b: Operand, name?: string): Value => binary(g, 'Div', a, b, name);
export const pow = (g: GraphBuilder, a: Operand, b: Operand, name?: string): Value => binary(g, 'Pow', a, b, name);

function unary(g: GraphBuilder, opType: string, x: Value, name?: string, attributes: Parameters<PendingNode['emitOne']>[2] = {}): Value {
  const node = g.op(opType, name);
  if (!isFloatType(x.dtype) && opType !== 'Neg') node.fail(`needs a float input, got ${x}`);
  return node.emitOne([x], { dtype: x.dtype, shape: x.shape }, attributes);
}

export const sqrt = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Sqrt', x, name);
export const exp = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Exp', x, name);
export const sin = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Sin', x, name);
export const cos = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Cos', x, name);
export const tanh = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Tanh', x, name);
export const erf = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Erf', x, name);
export const neg = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Neg', x, name);
export const reciprocal = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Reciprocal', x, name);
export const sigmoid = (g: GraphBuilder, x: Value, name?: string): Value => unary(g, 'Sigmoid', x, name);

/** SiLU / swish: x·σ(x). */
export function silu(g: GraphBuilder, x: Value, name = 'SiLU'): Value {
  return g.scope(name, () => mul(g, x, sigmoid(g, x)));
}

/** GELU, exact (erf) or with the tanh approximation (ONNX Gelu-20). */
export function gelu(g: GraphBuilder, x: Value, approximate: 'none' | 'tanh', name?: string): Value {
  return unary(g, 'Gelu', x, name, { approximate: attr.string(approximate) });
}

export function softmax(g: GraphBuilder, x: Value, axis = -1, name?: string): Value {
  const node = g.op('Softmax', name);
  if (x.rank !== null && normalizeAxis(axis, x.rank) === null) node.fail(`axis ${axis} out of range for ${x}`);
  if (!isFloatType(x.dtype)) node.fail(`needs a float input, got ${x}`);
  return node.emitOne([x], { dtype: x.dtype, shape: x.shape }, { axis: attr.int(axis) });
}
