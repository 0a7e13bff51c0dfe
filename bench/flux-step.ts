/**
 * One FLUX denoising step (transformer forward) at 512×512 (1024 image + 512 text tokens; --sizes adds
 * others, e.g. 1024 for 4096 image tokens), on a model
 * with FLUX.1-dev's real block dimensions (hidden 3072, 24 heads, MLP 12288) and reduced depth
 * (2 double + 4 single blocks; --full adds the whole 19 + 38, ≈ 14 GB resident in go_fast), random bf16
 * weights. For exact and go_fast it prints: load time, step time, the step's fixed FLOP count
 * (bench/step-flops.ts) and the rate it achieves, the ratio of that rate to the in-graph GEMM rate of
 * the path the step uses (bench/gemm-paths.ts, at M = 1536, K×N = 3072×12288, timed alternately with
 * the step in the same process, best of two each), and the peak RSS of the engine process that ran it. --profile adds an
 * onnxruntime profile of one warm step per precision, summarized by operator type (bench/profile-summary.ts).
 * Each measurement runs in its own child process (clean peak RSS). Usage:
 *   npx tsx bench/flux-step.ts [--dir <scratch folder>] [--keep] [--profile] [--full] [--skip-exact] [--sizes 512,1024]
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FluxTransformer, type FluxPrecision } from '../src/models/flux/transformer.js';
import { FLUX_DEV_CONFIG, type FluxConfig } from '../src/models/flux/config.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { QUANTIZED_8BIT } from '../src/weights/quantized-cache.js';
import { REDUCED_CONFIG, stepInputs, TEXT_TOKENS, tokensPerSide } from './flux-step-inputs.js';
import { FP32_PATH, nbitsPath, prepareInGraph } from './gemm-paths.js';
import { summarizeProfile } from './profile-summary.js';
import { writeRandomFlux } from './random-checkpoint.js';
import { stepFlops } from './step-flops.js';

const STEP_ROUNDS = 2;

interface Job {
  path: string;
  precision: FluxPrecision;
  cacheDir: string;
  side: number;
  profilePrefix?: string;
}

interface Result {
  loadMs: number;
  created: boolean | null;
  firstStepMs: number;
  stepMs: number;
  gemm: number;
  enginePeak: number;
  profile?: string;
}

function peakRss(pid: number | 'self'): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;
}

async function measure(job: Job): Promise<Result> {
  const worker = new InferenceWorker();
  const t0 = performance.now();
  const session = job.profilePrefix === undefined ? {} : { profilePrefix: job.profilePrefix };
  const model = await FluxTransformer.load(worker, job.path, { precision: job.precision, cacheDir: job.cacheDir, session });
  const loadMs = performance.now() - t0;
  const inputs = stepInputs(model.config, job.side);
  const imageTokens = tokensPerSide(job.side) ** 2;
  const c = model.config;
  const t1 = performance.now();
  await model.forward(inputs);
  const firstStepMs = performance.now() - t1;
  // The GEMM reference and the step alternate, best of each, so both see the same load on a shared machine.
  const path = job.precision === 'exact' ? FP32_PATH : nbitsPath(QUANTIZED_8BIT.bits, QUANTIZED_8BIT.blockSize, QUANTIZED_8BIT.accuracyLevel);
  const gemmSession = await prepareInGraph(path, imageTokens + TEXT_TOKENS, c.hidden, c.mlpHidden);
  let stepMs = Infinity;
  let gemmMs = Infinity;
  for (let round = 0; round < STEP_ROUNDS; round++) {
    const t = performance.now();
    await model.forward(inputs);
    stepMs = Math.min(stepMs, performance.now() - t);
    gemmMs = Math.min(gemmMs, await gemmSession.run());
  }
  const gemm = gemmSession.gflops(gemmMs);
  await gemmSession.release();
  const enginePeak = peakRss(worker.status.pid as number);
  await model.release();
  await worker.close();
  return { loadMs, created: model.report.quantizedCacheCreated ?? null, firstStepMs, stepMs, gemm, enginePeak };
}

function run(label: string, job: Job, config: FluxConfig): void {
  const self = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, [...process.execArgv, self, '--measure', JSON.stringify(job)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (child.status !== 0) throw new Error(`${label}: ${child.stderr}`);
  const r = JSON.parse(child.stdout.trim().split('\n').pop() as string) as Result;
  const flops = stepFlops(config, tokensPerSide(job.side) ** 2, TEXT_TOKENS);
  const total = flops.linear + flops.attention;
  const rate = total / (r.stepMs / 1000) / 1e9;
  console.log(
    `${label.padEnd(36)} load ${(r.loadMs / 1000).toFixed(1).padStart(6)} s${r.created === null ? '' : r.created ? ' (quantized now)' : ' (cache warm)   '}` +
      ` | step ${(r.stepMs / 1000).toFixed(2).padStart(6)} s (first ${(r.firstStepMs / 1000).toFixed(2)} s)` +
      ` | ${(total / 1e12).toFixed(2)} TFLOP → ${rate.toFixed(0)} GFLOP/s, in-graph GEMM ${r.gemm.toFixed(0)} GFLOP/s, ratio ${((100 * rate) / r.gemm).toFixed(0)} %` +
      ` | engine peak RSS ${(r.enginePeak / 2 ** 30).toFixed(2)} GiB`,
  );
  if (job.profilePrefix !== undefined) printProfile(job.profilePrefix);
}

function printProfile(prefix: string): void {
  const folder = join(prefix, '..');
  const file = readdirSync(folder).find((f) => f.startsWith(prefix.slice(folder.length + 1)) && f.endsWith('.json'));
  if (file === undefined) throw new Error(`no profile was written under ${prefix}`);
  const { runMs, ops } = summarizeProfile(join(folder, file));
  const kernels = ops.reduce((s, o) => s + o.ms, 0);
  console.log(`  profile of the warm step: ${runMs.toFixed(0)} ms run, ${((100 * kernels) / runMs).toFixed(1)} % in kernels; by op type:`);
  for (const o of ops.filter((o) => o.share >= 0.002)) {
    console.log(`    ${o.op.padEnd(28)} ${o.ms.toFixed(0).padStart(7)} ms  ${(100 * o.share).toFixed(1).padStart(5)} %  (${o.nodes} nodes)`);
  }
}

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    keep: { type: 'boolean' },
    profile: { type: 'boolean' },
    full: { type: 'boolean' },
    'skip-exact': { type: 'boolean' },
    sizes: { type: 'string', default: '512' },
    measure: { type: 'string' },
  },
});

if (values.measure !== undefined) {
  console.log(JSON.stringify(await measure(JSON.parse(values.measure) as Job)));
} else {
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'flux-lora-bench-flux-'));
  mkdirSync(dir, { recursive: true });
  const cacheDir = join(dir, 'cache');
  const sides = (values.sizes ?? '').split(',').map(Number);
  if (sides.some((side) => !Number.isInteger(side) || side < 256 || side % 16 !== 0)) throw new Error('--sizes must list square sides ≥ 256, multiples of 16');
  const [first, ...others] = sides as [number, ...number[]];
  try {
    const models: [string, FluxConfig][] = [
      ['2+4 blocks', REDUCED_CONFIG],
      ...(values.full ? [['FLUX.1-dev 19+38', FLUX_DEV_CONFIG] as [string, FluxConfig]] : []),
    ];
    for (const [name, config] of models) {
      const path = join(dir, `flux-${config.doubleBlocks}-${config.singleBlocks}-bf16.safetensors`);
      if (!existsSync(path)) await writeRandomFlux(path, config, 'BF16', false);
      const precisions: FluxPrecision[] = values['skip-exact'] ? ['int8'] : ['exact', 'int8'];
      for (const precision of precisions) {
        const label = `${name}, ${precision === 'exact' ? 'exact' : 'go_fast'}, ${first}²`;
        run(`${label}${precision === 'int8' ? ', cold cache' : ''}`, { path, precision, cacheDir, side: first }, config);
        if (precision === 'int8') run(`${label}, warm cache`, { path, precision, cacheDir, side: first }, config);
        if (values.profile)
          run(
            `${label}, profiled`,
            { path, precision, cacheDir, side: first, profilePrefix: join(dir, `profile-${config.doubleBlocks}-${precision}`) },
            config,
          );
        for (const side of others) run(`${name}, ${precision === 'exact' ? 'exact' : 'go_fast'}, ${side}²`, { path, precision, cacheDir, side }, config);
      }
    }
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}
