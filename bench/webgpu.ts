/**
 * onnxruntime's WebGPU provider against its CPU provider, on this machine's adapter (in CI and on
 * the dev box that is lavapipe, Mesa's CPU emulation of a GPU: its figures say how the graphs
 * behave on the provider, not how fast a GPU is). Prints min-of-N times per form:
 *  1. one linear x[M, K]·Wᵀ, W [N, K]: float32 (op.matmulTransposed for the device), float16 (Casts around a float16 MatMul,
 *     which uses shader-f16 where the adapter has it), MatMulNBits 8-bit and 4-bit;
 *  2. one step of the golden tiny FLUX transformer (config A), exact / int8 / int4;
 *  3. self-attention over S tokens: MultiHeadAttention (the CPU form) and MatMul → Softmax → MatMul
 *     (the WebGPU form, docs/webgpu.md finding 1).
 * Each WebGPU figure is compared with the CPU figure on the same line (ratio = CPU time / WebGPU time).
 * Usage: npm run bench:webgpu [-- --runs 5 --m 256 --k 1024 --n 1024 --tokens 1024]
 */
import '../src/engine-telemetry-off.js';
import { parseArgs } from 'node:util';
import { FluxTransformer, type FluxPrecision } from '../src/models/flux/transformer.js';
import type { Device } from '../src/onnx/device.js';
import { GraphBuilder, type BuiltModel } from '../src/onnx/graph.js';
import * as op from '../src/onnx/ops/index.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { float32Tensor, type TensorMap } from '../src/onnx/tensor-data.js';
import { describeAdapter, probeWebGpu } from '../src/onnx/webgpu-probe.js';
import { quantizeBlockwise } from '../src/weights/quantize.js';
import { goldenCase } from '../test/helpers/flux-cases.js';
import { goldenPath } from '../test/helpers/golden.js';
import { bestTime } from './best-time.js';
import { randomFloats } from './random.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    m: { type: 'string', default: '256' },
    k: { type: 'string', default: '1024' },
    n: { type: 'string', default: '1024' },
    tokens: { type: 'string', default: '512' },
  },
});
const runs = Number(values.runs);
const [M, K, N, S] = [values.m, values.k, values.n, values.tokens].map(Number) as [number, number, number, number];

const worker = new InferenceWorker();

/** Times `build(device)` with `feeds` on both providers and prints one line. */
async function compare(label: string, build: (device: Device) => BuiltModel, feeds: TensorMap): Promise<void> {
  const times: number[] = [];
  for (const device of ['cpu', 'webgpu'] as const) {
    const session = await worker.load(build(device), { device });
    times.push(await bestTime(runs, () => session.run(feeds)));
    await session.release();
  }
  const [cpu, gpu] = times as [number, number];
  console.log(`${label.padEnd(52)} cpu ${cpu.toFixed(1).padStart(9)} ms   webgpu ${gpu.toFixed(1).padStart(9)} ms   ratio ${(cpu / gpu).toFixed(2)}`);
}

type LinearForm = 'float32' | 'float16' | 4 | 8;

function linearGraph(device: Device, form: LinearForm, weight: Float32Array): BuiltModel {
  const g = new GraphBuilder(`linear-${form}`, { device });
  const x = g.input('x', 'float32', [M, K]);
  let y;
  if (form === 'float32') y = op.matmulTransposed(g, x, g.initializer('w', 'float32', [N, K], weight));
  else if (form === 'float16') {
    const wt = new Float32Array(K * N);
    for (let r = 0; r < N; r++) for (let c = 0; c < K; c++) wt[c * N + r] = weight[r * K + c] as number;
    const half = op.cast(g, g.initializer('w', 'float32', [K, N], wt), 'float16');
    y = op.cast(g, op.matmul(g, op.cast(g, x, 'float16'), half), 'float32');
  } else {
    const q = quantizeBlockwise(weight, N, K, { bits: form, blockSize: form === 8 ? 128 : 64 });
    const blocks = Math.ceil(K / q.blockSize);
    y = op.matMulNBits(
      g,
      x,
      {
        data: g.initializer('q', 'uint8', [N, blocks, (q.blockSize * form) / 8], q.data),
        scales: g.initializer('s', 'float32', [N * blocks], q.scales),
        zeroPoints: g.initializer('z', 'uint8', [q.zeroPoints.length], q.zeroPoints),
        n: N,
        k: K,
        bits: form,
        blockSize: q.blockSize,
      },
      { accuracyLevel: 4 },
    );
  }
  g.output(y, 'y');
  return g.build();
}

/** The same graph on both providers: op.attention builds the explicit form for a WebGPU graph. */
function attentionGraph(form: 'MultiHeadAttention' | 'explicit'): BuiltModel {
  const g = new GraphBuilder(`attention-${form}`, { device: form === 'explicit' ? 'webgpu' : 'cpu' });
  const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, 'float32', [1, S, 3072])) as [
    ReturnType<typeof g.input>,
    ReturnType<typeof g.input>,
    ReturnType<typeof g.input>,
  ];
  g.output(op.attention(g, q, k, v, { numHeads: 24 }), 'y');
  return g.build();
}

async function transformerStep(precision: FluxPrecision): Promise<void> {
  const { inputs } = await goldenCase('A', 0);
  const times: number[] = [];
  for (const device of ['cpu', 'webgpu'] as const) {
    const model = await FluxTransformer.load(worker, goldenPath('transformer_A_bfl.safetensors'), { precision, session: { device } });
    times.push(await bestTime(runs, () => model.forward(inputs)));
    await model.release();
  }
  const [cpu, gpu] = times as [number, number];
  console.log(
    `${`golden transformer A, one step, ${precision}`.padEnd(52)} cpu ${cpu.toFixed(1).padStart(9)} ms   webgpu ${gpu.toFixed(1).padStart(9)} ms   ratio ${(cpu / gpu).toFixed(2)}`,
  );
}

try {
  const probe = await probeWebGpu();
  if (!probe.ok) throw new Error(`no WebGPU: ${probe.reason}`);
  console.log(`adapter: ${describeAdapter(probe.adapter)}; min of ${runs} runs after a warm-up`);
  const weight = randomFloats(N * K, 1, 0.05);
  const x = { x: float32Tensor([M, K], randomFloats(M * K, 2)) };
  for (const form of ['float32', 'float16', 8, 4] as const) {
    await compare(`linear [${M}x${K}]·[${N}x${K}]ᵀ ${typeof form === 'number' ? `MatMulNBits ${form}-bit` : form}`, (d) => linearGraph(d, form, weight), x);
  }
  for (const precision of ['exact', 'int8', 'int4'] as const) await transformerStep(precision);
  const qkv = Object.fromEntries(['q', 'k', 'v'].map((n, i) => [n, float32Tensor([1, S, 3072], randomFloats(S * 3072, i + 3))]));
  for (const form of ['MultiHeadAttention', 'explicit'] as const)
    await compare(`attention, ${S} tokens, 24 heads × 128, ${form}`, () => attentionGraph(form), qkv);
} finally {
  await worker.close();
}
