/**
 * How fast go_fast's 8-bit cache (block 128) is derived from bf16 as checkpoints store it.
 *
 * 1. One real-shape linear (3072 × 12288, 75 MB of bf16), the candidates in alternating rounds in one
 *    process, each timed in CPU seconds of the process (all its threads: on a shared machine the wall
 *    rate depends on the other load, the CPU rate much less) and checked byte for byte against the
 *    JavaScript loop:
 *    - js slabs: bf16 converted to float32 a slab of rows at a time, then the JavaScript loop
 *      (quantizeRowSlabs; go_fast's derivation before the kernel);
 *    - js fused: one block at a time, bf16 widened two values per 32-bit word into a block-sized float32
 *      buffer, min/max while widening, then the same clamping store;
 *    - onnxruntime: bf16 widened here (as js fused) into float32 slabs, quantized by a graph
 *      (ReduceMin/ReduceMax, scale, zero point, Round, Clip, Cast) on onnxruntime's intra-op threads;
 *    - wasm simd: quantizeStored, the WebAssembly SIMD kernel (src/weights/quantize-simd.ts; go_fast's now).
 * 2. The pool on every core against one thread (both the kernel) over one FLUX double block's and one
 *    single block's linears (0.57 GB of bf16), wall and CPU seconds.
 * Usage: npx tsx bench/quantize.ts [--rounds 3]
 */
import '../src/engine-telemetry-off.js';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { GraphBuilder, type Value } from '../src/onnx/graph.js';
import { attr } from '../src/onnx/onnx-proto.js';
import { add, cast, div, neg, sub, where } from '../src/onnx/ops/index.js';
import { sessionOptions } from '../src/onnx/session-options.js';
import { f32ToBf16 } from '../src/weights/dtypes.js';
import { quantizeRowSlabs, type QuantizedWeight } from '../src/weights/quantize.js';
import { QuantizePool } from '../src/weights/quantize-pool.js';
import { quantizeStored, type StoredWeight } from '../src/weights/quantize-stored.js';
import { bytesToFloat32 } from '../src/weights/safetensors.js';
import { randomFloats } from './random.js';

const BLOCK = 128;
const options = { bits: 8 as const, blockSize: BLOCK };
const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });

type InMemory = StoredWeight & { bytes: Uint8Array };

/** bf16 bytes of an [n, k] weight with values like a trained linear's (uniform, scale 1/√k, a few 10× outliers). */
function bf16Weight(n: number, k: number, seed: number): InMemory {
  const w = randomFloats(n * k, seed, 1 / Math.sqrt(k));
  for (let i = seed; i < w.length; i += 997) w[i] = (w[i] as number) * 10;
  const bits = f32ToBf16(w);
  return { bytes: new Uint8Array(bits.buffer), dtype: 'BF16', file: 'bench', name: `linear ${n}×${k}` };
}

function emptyResult(n: number, k: number): QuantizedWeight {
  const kBlocks = Math.ceil(k / BLOCK);
  return {
    data: new Uint8Array(n * kBlocks * BLOCK),
    scales: new Float32Array(n * kBlocks),
    zeroPoints: new Uint8Array(n * kBlocks),
    bits: 8,
    blockSize: BLOCK,
    n,
    k,
  };
}

/** bf16 [count] (count even, 4-byte aligned) widened into float32 at `into`, two values per 32-bit word. */
function widenPairs(words: Uint32Array, first: number, count: number, into: Uint32Array, at: number): void {
  for (let j = 0; j < count >> 1; j++) {
    const w = words[first + j] as number;
    into[at + 2 * j] = w << 16;
    into[at + 2 * j + 1] = w & 0xffff0000;
  }
}

/** Candidate "js fused" (K even). */
function jsFused({ bytes }: InMemory, n: number, k: number): QuantizedWeight {
  const out = emptyResult(n, k);
  const kBlocks = Math.ceil(k / BLOCK);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const block = new Float32Array(BLOCK);
  const blockBits = new Uint32Array(block.buffer);
  const clamped = new Uint8ClampedArray(out.data.buffer);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < kBlocks; b++) {
      const count = Math.min(BLOCK, k - b * BLOCK);
      widenPairs(words, (col * k + b * BLOCK) >> 1, count, blockBits, 0);
      let lo = 0;
      let hi = 0;
      for (let j = 0; j < count; j++) {
        const v = block[j] as number;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
      }
      const scale = hi > lo ? Math.fround((hi - lo) / 255) : 1;
      const zp = Math.min(255, Math.max(0, Math.round(-lo / scale)));
      const index = col * kBlocks + b;
      out.scales[index] = scale;
      out.zeroPoints[index] = zp;
      const at = index * BLOCK;
      for (let j = 0; j < count; j++) clamped[at + j] = (block[j] as number) / scale + zp;
      out.data.fill(zp, at + count, at + BLOCK);
    }
  }
  return out;
}

/** Candidate "onnxruntime": x [rows, kBlocks, 128] float32 (K padded with zeros) → q, scale, zero point per block. */
async function onnxruntimeQuantizer(k: number): Promise<(weight: InMemory, n: number) => Promise<QuantizedWeight>> {
  const kBlocks = Math.ceil(k / BLOCK);
  const g = new GraphBuilder('quantize 8-bit');
  const x = g.input('x', 'float32', ['rows', kBlocks, BLOCK]);
  const perBlock = { dtype: 'float32' as const, shape: ['rows', kBlocks, 1] };
  const op = (type: string, inputs: Value[], attributes = {}) => g.op(type).emitOne(inputs, { ...perBlock, shape: inputs[0]?.shape ?? null }, attributes);
  const reduce = (type: string, bound: string) =>
    g.op(bound).emitOne([g.op(type).emitOne([x, g.int64s([2])], perBlock, { keepdims: attr.int(1) }), g.scalar(0)], perBlock);
  const lo = reduce('ReduceMin', 'Min');
  const hi = reduce('ReduceMax', 'Max');
  const range = sub(g, hi, lo);
  const positive = g.op('Greater').emitOne([range, g.scalar(0)], { dtype: 'bool', shape: range.shape });
  const scale = where(g, positive, div(g, range, 255), g.scalar(1));
  const clip = (v: Value) => op('Clip', [v, g.scalar(0), g.scalar(255)]);
  const zp = clip(op('Round', [div(g, neg(g, lo), scale)]));
  g.output(cast(g, clip(op('Round', [add(g, div(g, x, scale), zp)])), 'uint8'), 'q');
  g.output(scale, 'scale');
  g.output(cast(g, zp, 'uint8'), 'zp');
  const model = g.build();
  // Its threads must not spin after a run: this process's CPU time would charge the spinning to the next candidate.
  const options = sessionOptions(model, { memoryArena: false });
  const extra = options.extra as { session: Record<string, string> };
  extra.session['session.intra_op.allow_spinning'] = '0';
  const session = await ort.InferenceSession.create(model.bytes, options);
  const slabRows = Math.max(1, Math.floor((1 << 21) / k));
  return async ({ bytes }, n) => {
    const out = emptyResult(n, k);
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const slab = new Float32Array(slabRows * kBlocks * BLOCK);
    const slabBits = new Uint32Array(slab.buffer);
    for (let first = 0; first < n; first += slabRows) {
      const rows = Math.min(slabRows, n - first);
      for (let r = 0; r < rows; r++) widenPairs(words, ((first + r) * k) >> 1, k, slabBits, r * kBlocks * BLOCK);
      const feed = new ort.Tensor('float32', slab.subarray(0, rows * kBlocks * BLOCK), [rows, kBlocks, BLOCK]);
      const result = await session.run({ x: feed });
      out.data.set(result.q?.data as Uint8Array, first * kBlocks * BLOCK);
      out.scales.set(result.scale?.data as Float32Array, first * kBlocks);
      out.zeroPoints.set(result.zp?.data as Uint8Array, first * kBlocks);
    }
    return out;
  };
}

async function cpuSeconds<T>(fn: () => Promise<T> | T): Promise<[T, number, number]> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const value = await fn();
  const used = process.cpuUsage(cpu);
  return [value, (used.user + used.system) / 1e6, (performance.now() - started) / 1000];
}

/** Bytes (quantized values, scales, zero points) where `q` differs from `reference`. */
function differences(q: QuantizedWeight, reference: QuantizedWeight): string {
  const count = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + (v === b[i] ? 0 : 1), 0);
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const data = count(q.data, reference.data);
  const steps = q.data.reduce((worst, v, i) => Math.max(worst, Math.abs(v - (reference.data[i] as number))), 0);
  return `${data} values differ (at most ${steps} step), ${count(bytes(q.scales), bytes(reference.scales)) / 4} scales, ${count(q.zeroPoints, reference.zeroPoints)} zero points`;
}

// 1. Candidates on one real-shape linear.
const [n, k] = [3072, 12288];
const weight = bf16Weight(n, k, 1);
const jsSlabs = (w: InMemory) =>
  quantizeRowSlabs(
    (first, rows) => bytesToFloat32(w.bytes.subarray(first * k * 2, (first + rows) * k * 2), 'BF16', 'bench', 'js'),
    n,
    k,
    options,
    Math.floor((1 << 20) / k),
  );
const onnxruntime = await onnxruntimeQuantizer(k);
const candidates: [string, () => Promise<QuantizedWeight> | QuantizedWeight][] = [
  ['js slabs (before)', () => jsSlabs(weight)],
  ['js fused', () => jsFused(weight, n, k)],
  [`onnxruntime graph (${availableParallelism()} intra-op threads)`, () => onnxruntime(weight, n)],
  ['wasm simd (now)', () => quantizeStored(weight, n, k, options)],
];
const reference = jsSlabs(weight);
const totals = candidates.map(() => 0);
const checks: string[] = [];
for (let round = 0; round < Number(args.rounds); round++) {
  for (const [i, [, run]] of candidates.entries()) {
    const [q, cpu] = await cpuSeconds(run);
    totals[i] = (totals[i] as number) + cpu;
    if (round === 0) checks[i] = differences(q, reference);
  }
}
const gb = (weight.bytes.byteLength * Number(args.rounds)) / 1e9;
console.log(
  `${n}×${k} bf16 (${(weight.bytes.byteLength / 1e6).toFixed(0)} MB) → 8-bit blocks of ${BLOCK}, ${args.rounds} alternating rounds, CPU seconds of this process:`,
);
for (const [i, [label]] of candidates.entries()) {
  const cpu = totals[i] as number;
  console.log(
    `  ${label}: ${(cpu / Number(args.rounds)).toFixed(3)} CPU s per linear, ${(gb / cpu).toFixed(2)} GB of bf16 per CPU s, ${((totals[0] as number) / cpu).toFixed(1)}× js slabs | ${checks[i]}`,
  );
}

// 2. The pool against one thread, both on the kernel.
const SHAPES: [number, number][] = [
  [9216, 3072],
  [3072, 3072],
  [12288, 3072],
  [3072, 12288],
  [18432, 3072],
  [21504, 3072],
  [3072, 15360],
];
const block = SHAPES.map(([rows, cols], i) => bf16Weight(rows, cols, 10 + i));
const blockBytes = block.reduce((s, w) => s + w.bytes.byteLength, 0);
const pool = new QuantizePool();
// Started and warm (module loaded, kernel compiled) before the clock starts, as during a model load.
await Promise.all(Array.from({ length: pool.size }, () => pool.quantize(bf16Weight(128, 256, 3), 128, 256, options)));
const [, singleCpu, singleWall] = await cpuSeconds(() => SHAPES.forEach(([rows, cols], i) => quantizeStored(block[i] as StoredWeight, rows, cols, options)));
const copies = block.map((w) => ({ ...w, bytes: w.bytes.slice() }));
const [, pooledCpu, pooledWall] = await cpuSeconds(() =>
  Promise.all(SHAPES.map(([rows, cols], i) => pool.quantize(copies[i] as StoredWeight, rows, cols, options))),
);
await pool.close();
const rate = (s: number) => `${(blockBytes / 1e9 / s).toFixed(2)} GB/s of bf16`;
console.log(`${SHAPES.length} linears of a double and a single block, ${(blockBytes / 1e9).toFixed(2)} GB of bf16, ${availableParallelism()} cores:`);
console.log(`  one thread: ${singleWall.toFixed(2)} s wall (${rate(singleWall)}), ${singleCpu.toFixed(2)} CPU s (${rate(singleCpu)} per CPU s)`);
console.log(
  `  pool of ${pool.size}: ${pooledWall.toFixed(2)} s wall (${rate(pooledWall)}), ${pooledCpu.toFixed(2)} CPU s (${rate(pooledCpu)} per CPU s); ${(singleWall / pooledWall).toFixed(2)}× one thread's wall time`,
);
