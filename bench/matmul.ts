/**
 * GEMM reference for every other figure:
 *  1. the machine's theoretical peaks (bench/cpu-peaks.ts);
 *  2. where the fixed cost of one run() goes: a chain of 1 and 2 fp32 products run directly
 *     (the intercept 2·t₁ − t₂ is the per-run cost inside onnxruntime), the same graphs and a
 *     trivial graph through the engine process (whose difference is the cost of moving the
 *     feeds and results between processes), and the engine round trip of a 512² FLUX step's feeds;
 *  3. the in-graph rate (bench/gemm-paths.ts) of fp32 MatMul and the quantized paths at the shapes a
 *     FLUX step runs, each as a share of the matching peak.
 * Usage: npm run bench:matmul [-- --quick] [-- --paths default|all|<id substrings, comma-separated>] [-- --runs 3]
 * The default paths are fp32 MatMul, go_fast's path and the int8 per-channel ones; --quick runs
 * M = 1536 with 3072×3072 and 3072×12288 only.
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { GraphBuilder, type Value } from '../src/onnx/graph.js';
import { matmul, mul } from '../src/onnx/ops/index.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { sessionOptions } from '../src/onnx/session-options.js';
import { float32Tensor, type TensorMap } from '../src/onnx/tensor-data.js';
import { cpuPeaks } from './cpu-peaks.js';
import { allPaths, FP32_PATH, INT8_PATHS, nbitsPath, prepareInGraph, type GemmPath, type PreparedGemm } from './gemm-paths.js';
import { bestTime } from './best-time.js';
import { randomFloats } from './random.js';

// Large allocations go straight to mmap and back on release, so a session's anonymous-memory
// growth at creation is its own (glibc would otherwise reuse memory freed by the previous one).
if (process.env.MALLOC_MMAP_THRESHOLD_ === undefined) {
  const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' },
  });
  process.exit(child.status ?? 1);
}

const { values } = parseArgs({
  options: { quick: { type: 'boolean' }, paths: { type: 'string', default: 'default' }, runs: { type: 'string', default: '3' } },
});
const runs = Number(values.runs);

function peaks(): { fp32: number; int8: number | null } {
  const p = cpuPeaks();
  console.log(`${p.model}, ${p.cores} cores, flags ${p.flags.join(' ')}`);
  console.log(`clock: cpuinfo ${p.nominalGHz.toFixed(2)} GHz, measured ≥ ${p.measuredGHz.toFixed(2)} GHz (dependent adds)`);
  const g = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(0)}`);
  console.log(`theoretical peaks at the measured clock: fp32 ${g(p.fp32)} GFLOP/s, bf16 ${g(p.bf16)} GFLOP/s, int8 VNNI ${g(p.int8)} GOP/s\n`);
  return p;
}

/** x [m, k] through `chain` fp32 products [k, k] (chain 0: one multiply by 2). */
function chainModel(m: number, k: number, chain: number) {
  const g = new GraphBuilder(`chain ${chain}`);
  let x: Value = g.input('x', 'float32', [m, k]);
  for (let i = 0; i < chain; i++) x = matmul(g, x, g.initializer(`w${i}`, 'float32', [k, k], randomFloats(k * k, 10 + i, 0.02)));
  g.output(chain === 0 ? mul(g, x, 2) : x, 'y');
  return g.build();
}

async function fixedCost(): Promise<void> {
  const [m, k] = [4096, 3072];
  const xs = randomFloats(m * k, 2);
  const worker = new InferenceWorker();
  const direct: ort.InferenceSession[] = [];
  const engine = [];
  for (const chain of [0, 1, 2]) {
    const model = chainModel(m, k, chain);
    direct.push(await ort.InferenceSession.create(model.bytes, sessionOptions(model)));
    engine.push(await worker.load(model));
  }
  const times = { direct: [Infinity, Infinity, Infinity], engine: [Infinity, Infinity, Infinity] };
  const feed = { x: new ort.Tensor('float32', xs, [m, k]) };
  for (let rep = 0; rep < runs + 1; rep++) {
    // Interleaved, so both ways see the same load on a shared machine.
    for (const c of [0, 1, 2]) {
      let t = performance.now();
      await direct[c]?.run(feed);
      if (rep > 0) times.direct[c] = Math.min(times.direct[c] as number, performance.now() - t);
      t = performance.now();
      await engine[c]?.run({ x: float32Tensor([m, k], xs) });
      if (rep > 0) times.engine[c] = Math.min(times.engine[c] as number, performance.now() - t);
    }
  }
  const [d0, d1, d2] = times.direct as [number, number, number];
  const [e0, e1, e2] = times.engine as [number, number, number];
  const ms = (v: number) => `${v.toFixed(0)} ms`;
  console.log(`fixed cost of one run() at x [${m}×${k}] (${((m * k * 4) / 2 ** 20).toFixed(0)} MiB in and out), best of ${runs}, interleaved:`);
  console.log(`  one product: direct ${ms(d1)}, through the engine ${ms(e1)}; two: direct ${ms(d2)}, engine ${ms(e2)}`);
  console.log(`  intercept 2·t₁ − t₂: direct ${ms(2 * d1 - d2)} (inside onnxruntime), engine ${ms(2 * e1 - e2)}`);
  console.log(`  a trivial graph (x·2): direct ${ms(d0)}, engine ${ms(e0)} → moving x and y between processes ≈ ${ms(e0 - d0)}`);
  // What a 512² FLUX step moves: latents, T5 states, RoPE tables and positions in; the velocity out.
  const g = new GraphBuilder('step feeds');
  const inputs: Record<string, number[]> = { latents: [1, 1024, 64], t5: [1, 512, 4096], cos: [1536, 64], sin: [1536, 64] };
  const vs = Object.entries(inputs).map(([name, shape]) => g.input(name, 'float32', shape));
  g.output(mul(g, vs[0] as Value, 2), 'y');
  for (const v of vs.slice(1)) g.output(mul(g, v, 0), `${v.name}.used`);
  const stepSession = await worker.load(g.build());
  const feeds: TensorMap = Object.fromEntries(
    Object.entries(inputs).map(([name, shape], i) => [
      name,
      float32Tensor(
        shape,
        randomFloats(
          shape.reduce((a, b) => a * b, 1),
          i + 1,
        ),
      ),
    ]),
  );
  const roundTrip = await bestTime(runs, () => stepSession.run(feeds, { outputs: ['y'] }));
  const mib = Object.values(inputs).reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1) * 4, 0) / 2 ** 20;
  console.log(`  engine round trip of a 512² FLUX step's feeds (${mib.toFixed(1)} MiB in, 0.25 MiB out): ${ms(roundTrip)}\n`);
  for (const s of direct) await s.release();
  await worker.close();
}

const SHAPES: [number, number][] = [
  [3072, 3072],
  [3072, 9216],
  [3072, 12288],
  [12288, 3072],
  [15360, 3072],
];

function selectedPaths(which: string): GemmPath[] {
  if (which === 'all') return allPaths();
  if (which === 'default') return [FP32_PATH, nbitsPath(8, 128, 4), nbitsPath(8, 64, 4), nbitsPath(4, 64, 4), ...INT8_PATHS];
  const wanted = which.split(',');
  return allPaths().filter((p) => wanted.some((w) => p.id.includes(w)));
}

async function inGraphTable(): Promise<void> {
  const p = peaks();
  await fixedCost();
  const ms = values.quick ? [1536] : [1536, 4608];
  const shapes = (values.quick ? [SHAPES[0], SHAPES[2]] : SHAPES) as [number, number][];
  const paths = selectedPaths(values.paths as string);
  console.log(`in-graph rate, GFLOP/s (% of the fp32 / int8 peak): 3 products per graph, x bound once, 4 output rows each;`);
  console.log(`all paths of a shape are loaded together and timed in ${runs} interleaved rounds (best round), so they share the machine's load`);
  console.log(`err: max |y − y_exact| / max |y_exact| on rows with outlier channels and tokens (bench/gemm-paths.ts activations), last shape`);
  console.log(`packed: anonymous memory the session kept per weight parameter at creation; stored: bytes per parameter in the file`);
  const cells = new Map<GemmPath, string[]>(paths.map((path) => [path, []]));
  const notes = new Map<GemmPath, string>();
  for (const m of ms) {
    for (const [k, n] of shapes) {
      const prepared = [];
      for (const path of paths) prepared.push(await prepareInGraph(path, m, k, n));
      const best = prepared.map(() => Infinity);
      for (let r = 0; r < runs; r++) {
        for (const [i, g] of prepared.entries()) best[i] = Math.min(best[i] as number, await g.run());
      }
      for (const [i, path] of paths.entries()) {
        const g = prepared[i] as PreparedGemm;
        const rate = g.gflops(best[i] as number);
        const peak = path === FP32_PATH ? p.fp32 : (p.int8 ?? p.fp32);
        cells.get(path)?.push(`${m}·${k}×${n} ${rate.toFixed(0)} (${((100 * rate) / peak).toFixed(0)} %)`);
        notes.set(
          path,
          `err ${g.relativeError.toExponential(1)} | packed ${g.packedBytesPerParam.toFixed(2)}, stored ${g.storedBytesPerParam.toFixed(2)} B/param`,
        );
        await g.release();
      }
    }
  }
  for (const path of paths) console.log(`${path.id.padEnd(40)} ${notes.get(path) ?? ''} | ${(cells.get(path) ?? []).join(' | ')}`);
}

await inGraphTable();
