import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../src/onnx/graph.js';
import * as op from '../../../src/onnx/ops/index.js';
import { float32Tensor, int64Tensor } from '../../../src/onnx/tensor-data.js';
import { randomFloats } from '../../helpers/random.js';
import * as ref from '../../helpers/reference.js';
import { outputData, runOnce, useWorker } from '../../helpers/run-graph.js';

const worker = useWorker();

describe('graph builder ops against TypeScript references', () => {
  it('runs an MLP (MatMul, Add, Gelu tanh, Gemm, Softmax) with a symbolic batch', async () => {
    const g = new GraphBuilder('mlp');
    const x = g.input('x', 'float32', ['batch', 16]);
    const w1 = randomFloats(16 * 32, 1, 0.5);
    const b1 = randomFloats(32, 2);
    const w2 = randomFloats(8 * 32, 3, 0.5); // Linear layout [out, in]
    const b2 = randomFloats(8, 4);
    const h = op.gelu(g, op.add(g, op.matmul(g, x, g.initializer('w1', 'float32', [16, 32], w1)), g.initializer('b1', 'float32', [32], b1)), 'tanh');
    const y = op.gemm(g, h, g.initializer('w2', 'float32', [8, 32], w2), g.initializer('b2', 'float32', [8], b2), { transB: true });
    expect(y.shape).toEqual(['batch', 8]);
    g.output(op.softmax(g, y), 'probs');
    g.output(y, 'logits');

    const xs = randomFloats(3 * 16, 5);
    const out = await runOnce(worker(), g.build(), { x: float32Tensor([3, 16], xs) });
    const hidden = ref.map(ref.matmul(xs, w1, 3, 16, 32), (v, i) => ref.geluTanh(v + (b1[i % 32] as number)));
    const logits = ref.linear(hidden, w2, 3, 32, 8, b2);
    expect(out.logits?.dims).toEqual([3, 8]);
    expect(ref.maxAbsDiff(outputData(out, 'logits'), logits)).toBeLessThan(1e-5);
    expect(ref.maxAbsDiff(outputData(out, 'probs'), ref.rows(logits, 8, ref.softmaxRow))).toBeLessThan(1e-6);
  });

  it('computes elementwise math with broadcasting and numeric operands', async () => {
    const g = new GraphBuilder('elementwise');
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [3]);
    const outputs = {
      add: op.add(g, a, b),
      sub: op.sub(g, 1, a),
      mul: op.mul(g, a, 0.5),
      div: op.div(g, a, op.add(g, b, 4)),
      pow: op.pow(g, op.add(g, a, 2), 3),
      sqrt: op.sqrt(g, op.add(g, a, 2)),
      exp: op.exp(g, a),
      sin: op.sin(g, a),
      cos: op.cos(g, a),
      tanh: op.tanh(g, a),
      sigmoid: op.sigmoid(g, a),
      silu: op.silu(g, a),
      gelu: op.gelu(g, a, 'none'),
      neg: op.neg(g, a),
      reciprocal: op.reciprocal(g, op.add(g, a, 3)),
    };
    for (const [name, value] of Object.entries(outputs)) g.output(value, name);
    const av = randomFloats(6, 11);
    const bv = randomFloats(3, 12);
    const out = await runOnce(worker(), g.build(), { a: float32Tensor([2, 3], av), b: float32Tensor([3], bv) });
    const bb = (i: number) => bv[i % 3] as number;
    const expected: Record<string, (v: number, i: number) => number> = {
      add: (v, i) => v + bb(i),
      sub: (v) => 1 - v,
      mul: (v) => v * 0.5,
      div: (v, i) => v / (bb(i) + 4),
      pow: (v) => (v + 2) ** 3,
      sqrt: (v) => Math.sqrt(v + 2),
      exp: Math.exp,
      sin: Math.sin,
      cos: Math.cos,
      tanh: Math.tanh,
      sigmoid: ref.sigmoid,
      silu: (v) => v * ref.sigmoid(v),
      gelu: ref.geluExact,
      neg: (v) => -v,
      reciprocal: (v) => 1 / (v + 3),
    };
    for (const [name, f] of Object.entries(expected)) {
      expect(ref.maxAbsDiff(outputData(out, name), ref.map(av, f)), name).toBeLessThan(2e-6);
    }
  });

  it('reshapes, transposes, concatenates, splits, slices, gathers, expands, casts and selects', async () => {
    const g = new GraphBuilder('layout');
    const x = g.input('x', 'float32', [2, 3, 4]);
    const idx = g.input('idx', 'int64', [2]);
    const r = op.reshape(g, x, [0, -1]);
    expect(r.shape).toEqual([2, 12]);
    const t = op.transpose(g, x, [2, 0, 1]);
    expect(t.shape).toEqual([4, 2, 3]);
    const c = op.concat(g, [x, x], 1);
    expect(c.shape).toEqual([2, 6, 4]);
    const [s0, s1] = op.split(g, x, -1, [1, 3]);
    expect(s1?.shape).toEqual([2, 3, 3]);
    const sl = op.slice(g, x, { starts: [1, 0], ends: [3, 4], axes: [1, 2], steps: [1, 2] });
    expect(sl.shape).toEqual([2, 2, 2]);
    const ga = op.gather(g, x, idx, 2);
    expect(ga.shape).toEqual([2, 3, 2]);
    const ex = op.expand(g, op.slice(g, x, { starts: [0], ends: [1], axes: [0] }), [3, 3, 4]);
    expect(ex.shape).toEqual([3, 3, 4]);
    const positive = op.cast(g, op.cast(g, x, 'bool'), 'float32');
    const un = op.unsqueeze(g, x, [0, -1]);
    expect(un.shape).toEqual([1, 2, 3, 4, 1]);
    const sq = op.squeeze(g, un, [0, 4]);
    const mean = op.reduceMean(g, x, [-1], false);
    expect(mean.shape).toEqual([2, 3]);
    const greater = g.op('Greater').emitOne([x, g.scalar(0)], { dtype: 'bool', shape: x.shape });
    const sel = op.where(g, greater, x, op.neg(g, x));
    const shape = op.shapeOf(g, x);
    Object.entries({ r, t, c, s0: s0!, s1: s1!, sl, ga, ex, positive, sq, mean, sel, shape }).forEach(([n, v]) => g.output(v, n));

    const xv = Float32Array.from({ length: 24 }, (_, i) => i - 11.5);
    const out = await runOnce(worker(), g.build(), { x: float32Tensor([2, 3, 4], xv), idx: int64Tensor([2], [3, 0]) });
    const at = (b: number, i: number, j: number) => xv[(b * 3 + i) * 4 + j] as number;
    expect(Array.from(outputData(out, 'r'))).toEqual(Array.from(xv));
    expect(Array.from(outputData(out, 't')).slice(0, 6)).toEqual([at(0, 0, 0), at(0, 1, 0), at(0, 2, 0), at(1, 0, 0), at(1, 1, 0), at(1, 2, 0)]);
    expect(out.c?.dims).toEqual([2, 6, 4]);
    expect(Array.from(outputData(out, 's0'))).toEqual([0, 1, 2, 3, 4, 5].map((k) => at(Math.floor(k / 3), k % 3, 0)));
    expect(Array.from(outputData(out, 'sl'))).toEqual([at(0, 1, 0), at(0, 1, 2), at(0, 2, 0), at(0, 2, 2), at(1, 1, 0), at(1, 1, 2), at(1, 2, 0), at(1, 2, 2)]);
    expect(Array.from(outputData(out, 'ga')).slice(0, 2)).toEqual([at(0, 0, 3), at(0, 0, 0)]);
    expect(Array.from(outputData(out, 'ex')).slice(24, 28)).toEqual([at(0, 0, 0), at(0, 0, 1), at(0, 0, 2), at(0, 0, 3)]);
    expect(Array.from(outputData(out, 'positive'))).toEqual(Array.from(xv, () => 1));
    expect(Array.from(outputData(out, 'sq'))).toEqual(Array.from(xv));
    expect(Array.from(outputData(out, 'mean'))).toEqual([0, 1, 2, 3, 4, 5].map((row) => xv.subarray(row * 4, row * 4 + 4).reduce((s, v) => s + v, 0) / 4));
    expect(Array.from(outputData(out, 'sel'))).toEqual(Array.from(xv, Math.abs));
    expect(Array.from(out.shape?.data as BigInt64Array)).toEqual([2n, 3n, 4n]);
  });

  it('normalizes with LayerNormalization (with and without affine) and RMSNormalization', async () => {
    const g = new GraphBuilder('norms');
    const x = g.input('x', 'float32', ['n', 8]);
    const scale = randomFloats(8, 21);
    const bias = randomFloats(8, 22);
    const s = g.initializer('scale', 'float32', [8], scale);
    g.output(op.layerNorm(g, x, { epsilon: 1e-6 }), 'plain');
    g.output(op.layerNorm(g, x, { scale: s, bias: g.initializer('bias', 'float32', [8], bias), epsilon: 1e-5 }), 'affine');
    g.output(op.rmsNorm(g, x, s, 1e-6), 'rms');
    const xv = randomFloats(4 * 8, 23, 3);
    const out = await runOnce(worker(), g.build(), { x: float32Tensor([4, 8], xv) });
    expect(
      ref.maxAbsDiff(
        outputData(out, 'plain'),
        ref.rows(xv, 8, (r) => ref.layerNormRow(r, 1e-6)),
      ),
    ).toBeLessThan(1e-5);
    expect(
      ref.maxAbsDiff(
        outputData(out, 'affine'),
        ref.rows(xv, 8, (r) => ref.layerNormRow(r, 1e-5, scale, bias)),
      ),
    ).toBeLessThan(1e-5);
    expect(
      ref.maxAbsDiff(
        outputData(out, 'rms'),
        ref.rows(xv, 8, (r) => ref.rmsNormRow(r, 1e-6, scale)),
      ),
    ).toBeLessThan(1e-5);
  });

  it('computes attention with com.microsoft MultiHeadAttention, plain, biased and causal', async () => {
    const dims = { batch: 2, s: 5, l: 7, heads: 2, headDim: 8 };
    const width = dims.heads * dims.headDim;
    const g = new GraphBuilder('attention');
    const q = g.input('q', 'float32', ['B', 'S', width]);
    const k = g.input('k', 'float32', ['B', 'L', width]);
    const v = g.input('v', 'float32', ['B', 'L', width]);
    const bias = g.input('bias', 'float32', ['B', dims.heads, 'S', 'L']);
    const qq = g.input('qq', 'float32', ['B', 'L', width]);
    const plain = op.multiHeadAttention(g, q, k, v, { numHeads: dims.heads });
    expect(plain.shape).toEqual(['B', 'S', width]);
    g.output(plain, 'plain');
    g.output(op.multiHeadAttention(g, q, k, v, { numHeads: dims.heads, bias }), 'biased');
    g.output(op.multiHeadAttention(g, qq, k, v, { numHeads: dims.heads, causal: true }), 'causal');

    const qv = randomFloats(dims.batch * dims.s * width, 31, 2);
    const kv = randomFloats(dims.batch * dims.l * width, 32, 2);
    const vv = randomFloats(dims.batch * dims.l * width, 33);
    const bv = randomFloats(dims.batch * dims.heads * dims.s * dims.l, 34, 3);
    const qqv = randomFloats(dims.batch * dims.l * width, 35, 2);
    const out = await runOnce(worker(), g.build(), {
      q: float32Tensor([dims.batch, dims.s, width], qv),
      k: float32Tensor([dims.batch, dims.l, width], kv),
      v: float32Tensor([dims.batch, dims.l, width], vv),
      bias: float32Tensor([dims.batch, dims.heads, dims.s, dims.l], bv),
      qq: float32Tensor([dims.batch, dims.l, width], qqv),
    });
    expect(ref.maxAbsDiff(outputData(out, 'plain'), ref.attention(qv, kv, vv, dims))).toBeLessThan(1e-5);
    expect(ref.maxAbsDiff(outputData(out, 'biased'), ref.attention(qv, kv, vv, dims, { bias: bv }))).toBeLessThan(1e-5);
    const causalDims = { ...dims, s: dims.l };
    expect(ref.maxAbsDiff(outputData(out, 'causal'), ref.attention(qqv, kv, vv, causalDims, { causal: true }))).toBeLessThan(1e-5);
  });

  it('runs a conv + group norm + SiLU + nearest-upsample block', async () => {
    const d = { n: 1, c: 4, h: 5, w: 6, m: 8, kernel: 3, pad: 1 };
    const g = new GraphBuilder('conv-block');
    const x = g.input('x', 'float32', [1, 4, 'H', 'W']);
    const wv = randomFloats(8 * 4 * 9, 41, 0.3);
    const bv = randomFloats(8, 42);
    const gs = randomFloats(8, 43);
    const gb = randomFloats(8, 44);
    const convOut = op.conv(g, x, g.initializer('w', 'float32', [8, 4, 3, 3], wv), g.initializer('b', 'float32', [8], bv), { pads: [1, 1, 1, 1] });
    expect(convOut.shape).toEqual([1, 8, null, null]);
    const normed = op.groupNorm(g, convOut, {
      groups: 2,
      scale: g.initializer('gn.scale', 'float32', [8], gs),
      bias: g.initializer('gn.bias', 'float32', [8], gb),
      epsilon: 1e-6,
    });
    const act = op.silu(g, normed);
    g.output(act, 'act');
    g.output(op.resize(g, act, { scales: [1, 1, 2, 2], mode: 'nearest' }), 'up');
    const xv = randomFloats(d.n * d.c * d.h * d.w, 45);
    const out = await runOnce(worker(), g.build(), { x: float32Tensor([1, 4, 5, 6], xv) });
    const expected = ref.map(ref.groupNorm(ref.conv2d(xv, wv, bv, d), { n: 1, c: 8, hw: 30, groups: 2 }, gs, gb, 1e-6), (v) => v * ref.sigmoid(v));
    expect(ref.maxAbsDiff(outputData(out, 'act'), expected)).toBeLessThan(1e-5);
    const up = outputData(out, 'up');
    expect(out.up?.dims).toEqual([1, 8, 10, 12]);
    const actual = outputData(out, 'act');
    for (const [c, y, xx] of [
      [0, 0, 0],
      [3, 9, 11],
      [7, 4, 7],
    ] as const) {
      expect(up[(c * 10 + y) * 12 + xx]).toBe(actual[(c * 5 + Math.floor(y / 2)) * 6 + Math.floor(xx / 2)]);
    }
  });

  it('applies interleaved rotary embeddings per head and computes x·wᵀ with FusedMatMul', async () => {
    const [B, L, H, D] = [2, 3, 2, 4];
    const g = new GraphBuilder('rotary');
    const x = g.input('x', 'float32', ['B', 'L', H * D]);
    const cos = g.input('cos', 'float32', ['L', D / 2]);
    const sin = g.input('sin', 'float32', ['L', D / 2]);
    const pos = g.input('pos', 'int64', ['B', 'L']);
    g.output(op.rotaryEmbedding(g, x, cos, sin, pos, { numHeads: H, interleaved: true }), 'rotated');
    const wv = randomFloats(5 * H * D, 51);
    g.output(op.matmulTransposed(g, x, g.initializer('w', 'float32', [5, H * D], wv)), 'projected');
    const xv = randomFloats(B * L * H * D, 52);
    const angles = Float32Array.from({ length: L * (D / 2) }, (_, i) => 0.37 * i - 0.5);
    const out = await runOnce(worker(), g.build(), {
      x: float32Tensor([B, L, H * D], xv),
      cos: float32Tensor([L, D / 2], angles.map(Math.cos)),
      sin: float32Tensor([L, D / 2], angles.map(Math.sin)),
      pos: int64Tensor([B, L], [0, 1, 2, 2, 1, 0]),
    });
    const expected = new Float32Array(xv.length);
    for (let b = 0; b < B; b++) {
      for (let l = 0; l < L; l++) {
        const p = b === 0 ? l : 2 - l;
        for (let h = 0; h < H; h++) {
          for (let k = 0; k < D / 2; k++) {
            const i = ((b * L + l) * H + h) * D + 2 * k;
            const [c, s] = [Math.cos(angles[p * (D / 2) + k] as number), Math.sin(angles[p * (D / 2) + k] as number)];
            expected[i] = (xv[i] as number) * c - (xv[i + 1] as number) * s;
            expected[i + 1] = (xv[i] as number) * s + (xv[i + 1] as number) * c;
          }
        }
      }
    }
    expect(ref.maxAbsDiff(outputData(out, 'rotated'), expected)).toBeLessThan(1e-6);
    expect(out.projected?.dims).toEqual([B, L, 5]);
    expect(ref.maxAbsDiff(outputData(out, 'projected'), ref.linear(xv, wv, B * L, H * D, 5))).toBeLessThan(1e-5);
  });
});
