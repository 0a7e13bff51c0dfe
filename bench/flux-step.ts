/**
 * One FLUX denoising step (transformer forward) at 512×512: 1024 image + 512 text tokens.
 *  - real FLUX.1-dev shape (12 B params, random bf16 weights, BFL single file without metadata, so the
 *    config is inferred) in go_fast 8-bit: session creation cold (quantizing) and warm (cached), step
 *    wall time, achieved GFLOP/s against the step's FLOP count, the ratio to a MatMulNBits GEMM rate
 *    measured in the same process, peak RSS;
 *  - exact float32 on a mid-size config (hidden 1024, 4+8 blocks) against the fp32 GEMM rate.
 * Each measurement runs in its own child process (clean peak RSS). Usage:
 *   npx tsx bench/flux-step.ts [--dir <scratch folder, ≥ 40 GB free>] [--skip-real] [--keep]
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FluxTransformer, type FluxPrecision } from '../src/models/flux/transformer.js';
import { FLUX_DEV_CONFIG, type FluxConfig } from '../src/models/flux/config.js';
import { GraphBuilder } from '../src/onnx/graph.js';
import * as op from '../src/onnx/ops/index.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { float32Tensor } from '../src/onnx/tensor-data.js';
import { quantizeBlockwise } from '../src/weights/quantize.js';
import { randomFloats } from './random.js';
import { writeRandomFlux } from './random-checkpoint.js';
import { stepFlops } from './step-flops.js';

const IMAGE_TOKENS = 1024;
const TEXT_TOKENS = 512;

const MID_CONFIG: FluxConfig = { ...FLUX_DEV_CONFIG, hidden: 1024, heads: 8, mlpHidden: 4096, doubleBlocks: 4, singleBlocks: 8 };

function peakRss(): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
}

async function gemmRate(worker: InferenceWorker, kind: 'int8' | 'fp32', m: number, k: number, n: number): Promise<number> {
  const g = new GraphBuilder(`gemm-${kind}`);
  const x = g.input('x', 'float32', [m, k]);
  const w = randomFloats(n * k, 5, 0.02);
  if (kind === 'int8') {
    const q = quantizeBlockwise(w, n, k, { bits: 8, blockSize: 128 });
    const kBlocks = Math.ceil(k / 128);
    g.output(
      op.matMulNBits(g, x, {
        data: g.initializer('q', 'uint8', [n, kBlocks, 128], q.data),
        scales: g.initializer('s', 'float32', [n * kBlocks], q.scales),
        zeroPoints: g.initializer('z', 'uint8', [n * kBlocks], q.zeroPoints as Uint8Array),
        n,
        k,
        bits: 8,
        blockSize: 128,
      }),
      'y',
    );
  } else {
    g.output(op.matmulTransposed(g, x, g.initializer('w', 'float32', [n, k], w)), 'y');
  }
  const session = await worker.load(g.build());
  const feed = { x: float32Tensor([m, k], randomFloats(m * k, 6)) };
  await session.run(feed);
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await session.run(feed);
    best = Math.min(best, performance.now() - t);
  }
  await session.release();
  return (2 * m * k * n) / (best / 1000) / 1e9;
}

async function measure(path: string, precision: FluxPrecision, cacheDir: string, lowRankInputs: boolean): Promise<void> {
  const worker = new InferenceWorker();
  const t0 = performance.now();
  const model = await FluxTransformer.load(worker, path, { precision, cacheDir, lowRankInputs });
  const loadMs = performance.now() - t0;
  const c = model.config;
  const imgIds = new Float32Array(IMAGE_TOKENS * 3);
  for (let i = 0; i < IMAGE_TOKENS; i++) imgIds.set([0, Math.floor(i / 32), i % 32], i * 3);
  const inputs = {
    hiddenStates: float32Tensor([1, IMAGE_TOKENS, c.inChannels], randomFloats(IMAGE_TOKENS * c.inChannels, 1)),
    encoderHiddenStates: float32Tensor([1, TEXT_TOKENS, c.contextDim], randomFloats(TEXT_TOKENS * c.contextDim, 2, 0.5)),
    pooledProjections: float32Tensor([1, c.pooledDim], randomFloats(c.pooledDim, 3)),
    timestep: [0.8],
    guidance: [3.5],
    imgIds,
    txtIds: new Float32Array(TEXT_TOKENS * 3),
  };
  const t1 = performance.now();
  await model.forward(inputs);
  const firstStepMs = performance.now() - t1;
  const t2 = performance.now();
  await model.forward(inputs);
  const stepMs = performance.now() - t2;
  await model.release();
  const gemm =
    precision === 'exact'
      ? await gemmRate(worker, 'fp32', IMAGE_TOKENS + TEXT_TOKENS, c.hidden, c.mlpHidden)
      : await gemmRate(worker, 'int8', IMAGE_TOKENS + TEXT_TOKENS, c.hidden, c.mlpHidden);
  await worker.close();
  console.log(JSON.stringify({ loadMs, created: model.report.quantizedCacheCreated ?? null, firstStepMs, stepMs, gemm, peak: peakRss() }));
}

function run(label: string, args: string[], config: FluxConfig): void {
  const self = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, [...process.execArgv, self, '--measure', ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (child.status !== 0) throw new Error(`${label}: ${child.stderr}`);
  const r = JSON.parse(child.stdout.trim().split('\n').pop() as string);
  const flops = stepFlops(config, IMAGE_TOKENS, TEXT_TOKENS);
  const total = flops.linear + flops.attention;
  const rate = total / (r.stepMs / 1000) / 1e9;
  console.log(
    `${label.padEnd(40)} load ${(r.loadMs / 1000).toFixed(1).padStart(6)} s${r.created === null ? '' : r.created ? ' (quantized now)' : ' (cache warm)   '}` +
      ` | step ${(r.stepMs / 1000).toFixed(2).padStart(6)} s (first ${(r.firstStepMs / 1000).toFixed(2)} s)` +
      ` | ${(total / 1e12).toFixed(2)} TFLOP → ${rate.toFixed(0)} GFLOP/s, GEMM ${r.gemm.toFixed(0)} GFLOP/s, ratio ${((100 * rate) / r.gemm).toFixed(0)} %` +
      ` | peak RSS ${(r.peak / 2 ** 30).toFixed(2)} GiB`,
  );
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  strict: false,
  options: { dir: { type: 'string' }, 'skip-real': { type: 'boolean' }, keep: { type: 'boolean' }, measure: { type: 'boolean' } },
});

if (values.measure) {
  const [path, precision, cacheDir, lowRank] = process.argv.slice(3);
  await measure(path as string, precision as FluxPrecision, cacheDir as string, lowRank !== 'no-lora');
} else {
  const dir = typeof values.dir === 'string' ? values.dir : mkdtempSync(join(tmpdir(), 'flux-lora-bench-flux-'));
  mkdirSync(dir, { recursive: true });
  const cacheDir = join(dir, 'cache');
  try {
    const mid = join(dir, 'flux-mid-f32.safetensors');
    if (!existsSync(mid)) await writeRandomFlux(mid, MID_CONFIG, 'F32', true);
    run('mid-size (1024 hidden, 4+8 blocks), exact', [mid, 'exact', cacheDir, 'lora'], MID_CONFIG);
    run('same, built without LoRA inputs', [mid, 'exact', cacheDir, 'no-lora'], MID_CONFIG);
    if (!values['skip-real']) {
      const real = join(dir, 'flux1-dev-random.safetensors');
      const t = performance.now();
      if (!existsSync(real)) {
        await writeRandomFlux(real, FLUX_DEV_CONFIG, 'BF16', false);
        console.log(`wrote a random FLUX.1-dev checkpoint (bf16) in ${((performance.now() - t) / 1000).toFixed(0)} s`);
      }
      run('FLUX.1-dev shape, go_fast int8, cold cache', [real, 'int8', cacheDir, 'lora'], FLUX_DEV_CONFIG);
      run('FLUX.1-dev shape, go_fast int8, warm cache', [real, 'int8', cacheDir, 'lora'], FLUX_DEV_CONFIG);
    }
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
  console.log(`peak RSS of this parent process: ${(peakRss() / 2 ** 30).toFixed(2)} GiB`);
}
