/**
 * fp32 MatMul throughput, M=4096, K=N=3072 (77.3 GFLOP per run):
 *  1. through flux-lora's graph builder and worker-thread runner, weight as external data in a safetensors file;
 *  2. through onnxruntime directly (a hand-assembled ModelProto, InferenceSession on the main thread, default options).
 * Prints min-of-N times and GFLOP/s. Usage: npm run bench:matmul [-- --runs 5]
 */
import '../src/engine-telemetry-off.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/onnx/graph.js';
import { encodeModel } from '../src/onnx/onnx-proto.js';
import { matmul } from '../src/onnx/ops/linalg.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { float32Tensor } from '../src/onnx/tensor-data.js';
import { externalRef, floatWeight } from '../src/models/common/stored-weights.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { writeSafetensors } from '../src/weights/safetensors-writer.js';
import { randomFloats } from './random.js';

const M = 4096;
const K = 3072;
const N = 3072;
const GFLOP = (2 * M * K * N) / 1e9;

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);

async function minTime(label: string, fn: () => Promise<unknown>): Promise<void> {
  await fn(); // warm-up: arena growth, prepacking
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t);
  }
  console.log(`${label.padEnd(44)} ${best.toFixed(1).padStart(8)} ms  ${(GFLOP / (best / 1000)).toFixed(0).padStart(5)} GFLOP/s`);
}

const dir = mkdtempSync(join(tmpdir(), 'flux-lora-bench-'));
try {
  const weight = randomFloats(K * N, 1, 0.02);
  const x = randomFloats(M * K, 2);
  const path = join(dir, 'w.safetensors');
  await writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [K, N], data: weight }]);
  const file = await SafetensorsFile.open(path);
  console.log(`fp32 MatMul [${M}x${K}] x [${K}x${N}] = ${GFLOP.toFixed(1)} GFLOP, min of ${runs} runs after a warm-up`);

  const g = new GraphBuilder('bench-matmul');
  g.output(matmul(g, g.input('x', 'float32', [M, K]), floatWeight(g, 'w', externalRef(file.info('w')))), 'y');
  const worker = new InferenceWorker();
  const session = await worker.load(g.build());
  await minTime('flux-lora builder + worker runner (input copied)', () => session.run({ x: float32Tensor([M, K], x) }));
  await minTime('flux-lora builder + worker runner (input moved)', () => session.run({ x: float32Tensor([M, K], x.slice()) }, { transfer: true }));
  await session.release();
  await worker.close();

  const raw = encodeModel({
    graphName: 'raw',
    irVersion: 10,
    opsetImports: [{ domain: '', version: 21 }],
    nodes: [{ name: 'mm', opType: 'MatMul', domain: '', inputs: ['x', 'w'], outputs: ['y'], attributes: {} }],
    initializers: [{ kind: 'inline', name: 'w', dtype: 'float32', dims: [K, N], data: new Uint8Array(weight.buffer) }],
    inputs: [{ name: 'x', dtype: 'float32', shape: [M, K] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [M, N] }],
  });
  const direct = await ort.InferenceSession.create(raw);
  const feed = new ort.Tensor('float32', x, [M, K]);
  await minTime('onnxruntime directly (main thread, defaults)', () => direct.run({ x: feed }));
  await direct.release();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
