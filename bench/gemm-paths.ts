/**
 * The ways onnxruntime 1.30's CPU provider can compute a Linear y = x·Wᵀ with W [N, K] (torch layout),
 * and an in-graph rate for each: a graph holding several products of the same shape, x bound
 * once as an input and each product reduced to its first rows (so no output copy), run on this
 * thread with the options the engine uses. The weights are written to a safetensors file and
 * referenced as external data, like the models' weights, so the anonymous memory a session
 * gains at creation is what prepacking keeps.
 */
import '../src/engine-telemetry-off.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { GraphBuilder, MICROSOFT_DOMAIN, type Value } from '../src/onnx/graph.js';
import { cast, matMulNBits, matmulTransposed, mul, slice } from '../src/onnx/ops/index.js';
import { sessionOptions } from '../src/onnx/session-options.js';
import { externalRef } from '../src/models/common/stored-weights.js';
import { quantizeBlockwise } from '../src/weights/quantize.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../src/weights/safetensors-writer.js';
import { linear } from '../test/helpers/reference.js';
import { randomFloats } from './random.js';

type WeightTensors = Record<string, { dtype: 'F32' | 'U8' | 'I8'; shape: number[]; data: Float32Array | Uint8Array | Int8Array }>;

export interface GemmPath {
  id: string;
  /** The stored form of w [N, K]. */
  weights(w: Float32Array, n: number, k: number): WeightTensors;
  /** x [M, K] → y [M, N], reading the stored tensors through `t`. */
  graph(g: GraphBuilder, x: Value, t: (key: string) => Value, n: number, k: number, tag: string): Value;
}

export const FP32_PATH: GemmPath = {
  id: 'fp32 MatMul',
  weights: (w, n, k) => ({ w: { dtype: 'F32', shape: [n, k], data: w } }),
  graph: (g, x, t) => matmulTransposed(g, x, t('w')),
};

/** com.microsoft MatMulNBits, blockwise asymmetric weights (src/weights/quantize.ts). */
export function nbitsPath(bits: 4 | 8, blockSize: number, accuracyLevel: 0 | 1 | 2 | 3 | 4): GemmPath {
  return {
    id: `MatMulNBits ${bits}-bit b${blockSize} acc${accuracyLevel}`,
    weights(w, n, k) {
      const q = quantizeBlockwise(w, n, k, { bits, blockSize });
      return {
        q: { dtype: 'U8', shape: [n, Math.ceil(k / blockSize), (blockSize * bits) / 8], data: q.data },
        s: { dtype: 'F32', shape: [q.scales.length], data: q.scales },
        z: { dtype: 'U8', shape: [q.zeroPoints.length], data: q.zeroPoints },
      };
    },
    graph: (g, x, t, n, k) => matMulNBits(g, x, { data: t('q'), scales: t('s'), zeroPoints: t('z'), n, k, bits, blockSize }, { accuracyLevel }),
  };
}

/** Symmetric int8 per output channel, transposed for MatMulInteger-style ops: B [K, N], scale = max |w| of the channel / 127. */
function quantizePerChannel(weight: Float32Array, n: number, k: number): { data: Int8Array; scales: Float32Array } {
  const data = new Int8Array(n * k);
  const scales = new Float32Array(n);
  for (let col = 0; col < n; col++) {
    const row = col * k;
    let peak = 0;
    for (let i = row; i < row + k; i++) peak = Math.max(peak, Math.abs(weight[i] as number));
    const scale = peak > 0 ? Math.fround(peak / 127) : 1;
    scales[col] = scale;
    for (let i = 0; i < k; i++) data[i * n + col] = Math.round((weight[row + i] as number) / scale);
  }
  return { data, scales };
}

/** Per-output-channel symmetric int8 weights as B [K, N] with their scales [N]. */
function perChannelWeights(w: Float32Array, n: number, k: number): WeightTensors {
  const q = quantizePerChannel(w, n, k);
  return { b: { dtype: 'I8', shape: [k, n], data: q.data }, s: { dtype: 'F32', shape: [n], data: q.scales } };
}

/** x → DynamicQuantizeLinear → (uint8 x, its scale, its zero point), one scale for the whole tensor. */
function dynamicQuantize(g: GraphBuilder, x: Value, tag: string): Value[] {
  return g.op('DynamicQuantizeLinear', `${tag}.dql`).emit(
    [x],
    [
      { dtype: 'uint8', shape: x.shape },
      { dtype: 'float32', shape: [] },
      { dtype: 'uint8', shape: [] },
    ],
  );
}

const rows = (x: Value, n: number) => [x.shape?.[0] ?? null, n];

/** com.microsoft DynamicQuantizeMatMul: x quantized per tensor (uint8) at run time, int8 per-channel weights. */
const dynamicQuantizeMatMul: GemmPath = {
  id: 'DynamicQuantizeMatMul int8 per-channel',
  weights: perChannelWeights,
  graph: (g, x, t, n, _k, tag) =>
    g.op('DynamicQuantizeMatMul', `${tag}.dqmm`, MICROSOFT_DOMAIN).emitOne([x, t('b'), t('s')], { dtype: 'float32', shape: rows(x, n) }),
};

/** Standard ONNX: DynamicQuantizeLinear → MatMulInteger (int32) → Cast → ·a_scale·b_scale[N]. */
const matMulInteger: GemmPath = {
  id: 'MatMulInteger + scale, per-channel',
  weights: perChannelWeights,
  graph(g, x, t, n, _k, tag) {
    const [a, aScale, aZero] = dynamicQuantize(g, x, tag) as [Value, Value, Value];
    const acc = g.op('MatMulInteger', `${tag}.mmi`).emitOne([a, t('b'), aZero], { dtype: 'int32', shape: rows(x, n) });
    return mul(g, mul(g, cast(g, acc, 'float32'), aScale), t('s'));
  },
};

/**
 * Standard ONNX QLinearMatMul: its output is requantized to uint8 with a fixed y scale that a model
 * would have to calibrate per linear (here a constant: speed only, no golden comparison).
 */
const qlinearMatMul: GemmPath = {
  id: 'QLinearMatMul (uint8 out)',
  weights: perChannelWeights,
  graph(g, x, t, n, _k, tag) {
    const [a, aScale, aZero] = dynamicQuantize(g, x, tag) as [Value, Value, Value];
    const yScale = g.initializer(`${tag}.ys`, 'float32', [], new Float32Array([0.05]));
    const yZero = g.initializer(`${tag}.yz`, 'uint8', [], new Uint8Array([128]));
    const bZero = g.initializer(`${tag}.bz`, 'int8', [n], new Int8Array(n));
    const y = g.op('QLinearMatMul', `${tag}.qlmm`).emitOne([a, aScale, aZero, t('b'), t('s'), bZero, yScale, yZero], { dtype: 'uint8', shape: rows(x, n) });
    return g.op('DequantizeLinear', `${tag}.dq`).emitOne([y, yScale, yZero], { dtype: 'float32', shape: y.shape });
  },
};

export const INT8_PATHS: readonly GemmPath[] = [dynamicQuantizeMatMul, matMulInteger, qlinearMatMul];

export function allPaths(): GemmPath[] {
  const nbits: GemmPath[] = [];
  for (const bits of [8, 4] as const) {
    for (const blockSize of [32, 64, 128]) for (const level of [0, 1, 2, 4] as const) nbits.push(nbitsPath(bits, blockSize, level));
  }
  return [FP32_PATH, ...nbits, ...INT8_PATHS];
}

function anonRss(): number {
  return Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
}

const CHECKED_ROWS = 4;

/**
 * Activations shaped like a transformer's linear inputs: unit-scale values, 1 in 128 channels
 * 20× larger (outlier channels), and every 8th token (row) 8× larger than the rest, so
 * per-tensor activation quantization is tested against what per-block quantization sees.
 */
export function activations(m: number, k: number, seed: number): Float32Array {
  const x = randomFloats(m * k, seed, 1.7);
  for (let r = 0; r < m; r++) {
    const rowScale = r % 8 === 1 ? 8 : 1;
    for (let c = 0; c < k; c++) x[r * k + c] = (x[r * k + c] as number) * rowScale * (c % 128 === 5 ? 20 : 1);
  }
  return x;
}

/** A session holding `products` products of one path and shape, ready to time. */
export interface PreparedGemm {
  /** One timed run, ms. */
  run(): Promise<number>;
  gflops(ms: number): number;
  packedBytesPerParam: number;
  storedBytesPerParam: number;
  relativeError: number;
  release(): Promise<void>;
}

/** Builds and warms the graph of `products` products (distinct random weights) of `path` at x [m, k] · Wᵀ, W [n, k]. */
export async function prepareInGraph(path: GemmPath, m: number, k: number, n: number, products = 3): Promise<PreparedGemm> {
  const dir = mkdtempSync(join(tmpdir(), 'flux-lora-gemm-'));
  try {
    const tensors: TensorToWrite[] = [];
    const xs = activations(m, k, 7);
    let expected: Float32Array = new Float32Array(0);
    for (let i = 0; i < products; i++) {
      const w = randomFloats(n * k, 100 + i, 1 / Math.sqrt(k));
      // The reference: the first CHECKED_ROWS rows of x·Wᵀ, accumulated in double precision.
      if (i === 0) expected = linear(xs, w, CHECKED_ROWS, k, n);
      for (const [key, t] of Object.entries(path.weights(w, n, k))) {
        tensors.push({ name: `p${i}.${key}`, dtype: t.dtype, shape: t.shape, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
      }
    }
    const storedBytes = tensors.reduce((s, t) => s + (t.data as Uint8Array).byteLength, 0);
    await writeSafetensors(join(dir, 'w.safetensors'), tensors);
    tensors.length = 0;
    const stored = await SafetensorsFile.open(join(dir, 'w.safetensors'));
    const g = new GraphBuilder(`gemm ${path.id}`);
    const x = g.input('x', 'float32', [m, k]);
    for (let i = 0; i < products; i++) {
      const y = path.graph(g, x, (key) => g.external(`p${i}.${key}`, externalRef(stored.info(`p${i}.${key}`))), n, k, `p${i}`);
      g.output(slice(g, y, { starts: [0], ends: [CHECKED_ROWS], axes: [0] }), `y${i}`);
    }
    const model = g.build();
    const before = anonRss();
    const session = await ort.InferenceSession.create(model.bytes, sessionOptions(model));
    const packed = anonRss() - before;
    const feed = { x: new ort.Tensor('float32', xs, [m, k]) };
    const first = (await session.run(feed)).y0?.data as Float32Array;
    let worst = 0;
    let peak = 0;
    expected.forEach((v, i) => {
      worst = Math.max(worst, Math.abs((first[i] as number) - v));
      peak = Math.max(peak, Math.abs(v));
    });
    const params = products * n * k;
    return {
      async run() {
        const t = performance.now();
        await session.run(feed);
        return performance.now() - t;
      },
      gflops: (ms) => (products * 2 * m * k * n) / (ms / 1000) / 1e9,
      packedBytesPerParam: packed / params,
      storedBytesPerParam: storedBytes / params,
      relativeError: worst / peak,
      release: () => session.release(),
    };
  } finally {
    // The session holds the weights (prepacked, or mapped: an unlinked file stays readable).
    rmSync(dir, { recursive: true, force: true });
  }
}
