import { describe, expect, it } from 'vitest';
import { GraphBuilder, GraphError } from '../../../src/onnx/graph.js';
import * as op from '../../../src/onnx/ops/index.js';

function expectGraphError(fn: () => unknown, node: string, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(GraphError);
  const e = caught as GraphError;
  expect(e.node).toBe(node);
  expect(e.message).toContain(`node "${node}"`);
  expect(e.message).toMatch(pattern);
}

describe('build-time shape and dtype checks name the node', () => {
  const setup = () => {
    const g = new GraphBuilder('checks');
    return { g, x: g.input('x', 'float32', ['B', 'S', 8]) };
  };

  it('rejects a MatMul with mismatched inner dims, inside a scope', () => {
    const { g, x } = setup();
    const w = g.initializer('w', 'float32', [4, 2], new Float32Array(8));
    expectGraphError(() => g.scope('block0', () => op.matmul(g, x, w, 'q_proj')), 'block0/q_proj', /inner dimensions differ: \[B,S,8\] × \[4,2\]/);
  });

  it('rejects operands of different dtypes', () => {
    const { g, x } = setup();
    const ids = g.input('ids', 'int64', ['B', 'S', 8]);
    expectGraphError(() => op.add(g, x, ids), 'Add', /dtypes differ/);
    expectGraphError(() => op.matmul(g, x, op.cast(g, x, 'float16'), 'mm'), 'mm', /dtypes differ/);
  });

  it('rejects broadcasts that cannot work', () => {
    const { g, x } = setup();
    const y = g.input('y', 'float32', [3, 7]);
    expectGraphError(() => op.mul(g, x, y, 'scale'), 'scale', /cannot broadcast \[B,S,8\] with \[3,7\]/);
    expectGraphError(() => op.expand(g, y, [2, 3, 5], 'ex'), 'ex', /cannot broadcast/);
  });

  it('checks reshape, transpose, concat, split, slice and squeeze arguments', () => {
    const { g, x } = setup();
    const fixed = g.input('f', 'float32', [2, 3, 4]);
    expectGraphError(() => op.reshape(g, fixed, [5, -1], 'r1'), 'r1', /cannot reshape/);
    expectGraphError(() => op.reshape(g, fixed, [-1, -1], 'r2'), 'r2', /at most one -1/);
    expectGraphError(() => op.reshape(g, fixed, [2, 3, 5], 'r3'), 'r3', /24 elements/);
    expect(op.reshape(g, x, [0, 0, 2, 4]).shape).toEqual(['B', 'S', 2, 4]);
    expect(op.reshape(g, x, [0, -1]).shape).toEqual(['B', null]);
    expectGraphError(() => op.transpose(g, x, [0, 0, 1], 't1'), 't1', /not a permutation/);
    expectGraphError(() => op.transpose(g, x, [1, 0], 't2'), 't2', /does not match/);
    expectGraphError(() => op.concat(g, [fixed, g.input('c', 'float32', [2, 5, 5])], 1, 'cat'), 'cat', /dim 2 differs/);
    expectGraphError(() => op.concat(g, [fixed], 3, 'cat2'), 'cat2', /axis 3 out of range/);
    expectGraphError(() => op.split(g, fixed, 2, [1, 2], 'sp'), 'sp', /sum to 3, but axis 2/);
    expectGraphError(() => op.slice(g, fixed, { starts: [0], ends: [1], axes: [0], steps: [0] }, 'sl'), 'sl', /non-zero/);
    expectGraphError(() => op.squeeze(g, fixed, [1], 'sq'), 'sq', /size 3, not 1/);
  });

  it('checks norms, conv and attention parameters', () => {
    const { g, x } = setup();
    const wrong = g.initializer('s', 'float32', [7], new Float32Array(7));
    expectGraphError(() => op.layerNorm(g, x, { scale: wrong, epsilon: 1e-6, name: 'ln' }), 'ln', /scale .* does not match axis -1/);
    expectGraphError(() => op.rmsNorm(g, x, wrong, 1e-6, 'rms'), 'rms', /scale/);
    const img = g.input('img', 'float32', [1, 4, 8, 8]);
    const w = g.initializer('cw', 'float32', [6, 3, 3, 3], new Float32Array(162));
    expectGraphError(() => op.conv(g, img, w, null, { name: 'conv' }), 'conv', /input channels 4/);
    const gs = g.initializer('gs', 'float32', [4], new Float32Array(4));
    expectGraphError(() => op.groupNorm(g, img, { groups: 3, scale: gs, bias: gs, epsilon: 1e-6, name: 'gn' }), 'gn', /not divisible into 3 groups/);
    expectGraphError(() => op.multiHeadAttention(g, x, x, x, { numHeads: 3, name: 'attn' }), 'attn', /not divisible by 3 heads/);
    const k = g.input('k', 'float32', ['B', 'L', 6]);
    expectGraphError(() => op.multiHeadAttention(g, x, k, k, { numHeads: 2, name: 'attn2' }), 'attn2', /query and key widths differ/);
  });

  it('checks MatMulNBits weight layouts', () => {
    const { g, x } = setup();
    const data = g.initializer('q', 'uint8', [16, 1, 32], new Uint8Array(512));
    const scales = g.initializer('qs', 'float32', [16], new Float32Array(16));
    const badScales = g.initializer('qs2', 'float32', [15], new Float32Array(15));
    const weight = { data, scales, n: 16, k: 8, bits: 8 as const, blockSize: 32 };
    expect(op.matMulNBits(g, x, weight).shape).toEqual(['B', 'S', 16]);
    expectGraphError(() => op.matMulNBits(g, x, { ...weight, scales: badScales }, { name: 'mnb' }), 'mnb', /scales must be float32\[16\]/);
    expectGraphError(() => op.matMulNBits(g, x, { ...weight, bits: 4 }, { name: 'mnb4' }), 'mnb4', /B must be uint8\[16,1,16\]/);
    expectGraphError(() => op.matMulNBits(g, x, { ...weight, k: 16 }, { name: 'mnbk' }), 'mnbk', /does not end in K=16/);
  });

  it('rejects values from another graph, duplicate names and bad initializer sizes', () => {
    const { g, x } = setup();
    const other = new GraphBuilder('other');
    const y = other.input('y', 'float32', [8]);
    expectGraphError(() => op.add(g, x, y, 'mix'), 'mix', /belongs to graph "other"/);
    expect(() => g.input('x', 'float32', [1])).toThrow(GraphError);
    expect(() => g.initializer('bad', 'float32', [2, 2], new Float32Array(3))).toThrow(/needs 16 bytes, got 12/);
    expect(() => new GraphBuilder('empty').build()).toThrow(/no outputs/);
    expect(() => new GraphBuilder('old', { opset: 12 })).toThrow(/unsupported opset/);
  });

  it('gives unique names to repeated ops and scopes', () => {
    const { g, x } = setup();
    const a = op.add(g, x, 1);
    const b = op.add(g, x, 1);
    const c = g.scope('blk', () => op.add(g, x, 1, 'sum'));
    expect([a.name, b.name, c.name]).toEqual(['Add', 'Add_2', 'blk/sum']);
  });
});

describe('shape inference with unknown dims', () => {
  it('keeps unknown dims unknown through broadcasting', () => {
    const g = new GraphBuilder('unknown');
    const x = g.input('x', 'float32', ['b', 3, null, null]);
    expect(op.mul(g, x, op.sigmoid(g, x)).shape).toEqual(['b', 3, null, null]);
    expect(op.add(g, x, g.input('y', 'float32', [1, null, 5])).shape).toEqual(['b', 3, null, 5]);
  });
});
