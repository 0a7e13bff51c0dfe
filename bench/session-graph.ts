/**
 * What onnxruntime's graph optimizers cost and what they buy on the FLUX transformer's graph (docs/onnxruntime.md
 * §10.12), for each graphOptimizationLevel in --levels:
 *   creation  the full-depth graph (19 double + 38 single blocks, LoRA inputs on every linear, go_fast) at a small
 *             width (hidden 256, MLP 1024), so that its weights cost next to nothing: the session's creation, wall
 *             and process CPU seconds; and the same graph without LoRA inputs, for reference;
 *   step      the real-dimension reduced-depth model of bench/flux-step.ts (2 double + 4 single blocks, random bf16
 *             weights) at 512², go_fast and exact: one session per level in one engine (the engine's CPU seconds to
 *             create each), the velocity against the first level's (bit-identical or the largest difference), then
 *             --steps warm steps per level, the levels alternating step by step (median and best).
 * Each creation runs in a fresh process, the levels alternating within each of --rounds rounds, so each is compared
 * only with the others of the same round. Usage:
 *   npx tsx bench/session-graph.ts [--dir <scratch folder>] [--keep] [--rounds 3] [--levels all,extended,basic,disabled]
 *                                  [--skip-creation] [--skip-step] [--precisions int8,exact] [--steps 4]
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { FLUX_DEV_CONFIG, type FluxConfig } from '../src/models/flux/config.js';
import { openFluxCheckpoint } from '../src/models/flux/checkpoint.js';
import { buildFluxGraph } from '../src/models/flux/graph.js';
import { fluxQuantizedCache, quantizedParameters } from '../src/models/flux/quantized-parameters.js';
import { FluxTransformer, type FluxPrecision } from '../src/models/flux/transformer.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { sessionOptions, type SessionSettings } from '../src/onnx/session-options.js';
import { QUANTIZED_8BIT } from '../src/weights/quantized-cache.js';
import { REDUCED_CONFIG, stepInputs } from './flux-step-inputs.js';
import { processCpuSeconds } from './process-memory.js';
import { writeRandomFlux } from './random-checkpoint.js';

type Level = NonNullable<SessionSettings['graphOptimization']>;
const LEVELS: readonly Level[] = ['all', 'extended', 'basic', 'disabled'];
/** Full depth, small width: the graph's node and input counts at a negligible weight cost. */
const NARROW_CONFIG: FluxConfig = { ...FLUX_DEV_CONFIG, hidden: 256, heads: 2, mlpHidden: 1024, contextDim: 256, pooledDim: 128 };
const SIDE = 512;

interface CreationJob {
  kind: 'creation';
  path: string;
  cacheDir: string;
  level: Level;
  lora: boolean;
}

interface StepJob {
  kind: 'step';
  path: string;
  cacheDir: string;
  levels: Level[];
  precision: FluxPrecision;
  steps: number;
}

interface Measured {
  sessionS: number;
  cpuS: number;
}

interface StepMeasured extends Measured {
  stepsS: number[];
  /** The velocity against the first level's. */
  difference: string;
}

async function measureCreation(job: CreationJob): Promise<Measured> {
  const checkpoint = await openFluxCheckpoint(job.path);
  const cache = await fluxQuantizedCache(checkpoint, QUANTIZED_8BIT, job.cacheDir);
  const model = buildFluxGraph(checkpoint.config, quantizedParameters(checkpoint, cache.file, QUANTIZED_8BIT), { lora: job.lora });
  const cpu = processCpuSeconds('self');
  const started = performance.now();
  const session = await ort.InferenceSession.create(model.bytes, sessionOptions(model, { graphOptimization: job.level }));
  const measured = { sessionS: (performance.now() - started) / 1000, cpuS: processCpuSeconds('self') - cpu };
  await session.release();
  return measured;
}

async function measureSteps(job: StepJob): Promise<StepMeasured[]> {
  const worker = new InferenceWorker();
  try {
    const pid = worker.status.pid as number;
    const loaded: [FluxTransformer, Measured][] = [];
    for (const level of job.levels) {
      const cpu = processCpuSeconds(pid);
      const started = performance.now();
      const model = await FluxTransformer.load(worker, job.path, { precision: job.precision, cacheDir: job.cacheDir, session: { graphOptimization: level } });
      loaded.push([model, { sessionS: (performance.now() - started) / 1000, cpuS: processCpuSeconds(pid) - cpu }]);
    }
    const inputs = stepInputs(REDUCED_CONFIG, SIDE);
    const velocities: Float32Array[] = [];
    for (const [model] of loaded) velocities.push((await model.forward(inputs)).data as Float32Array);
    const stepsS = loaded.map((): number[] => []);
    for (let step = 0; step < job.steps; step++) {
      for (const [i, [model]] of loaded.entries()) {
        const t = performance.now();
        await model.forward(inputs);
        stepsS[i]?.push((performance.now() - t) / 1000);
      }
    }
    for (const [model] of loaded) await model.release();
    return loaded.map(([, m], i) => ({
      ...m,
      stepsS: stepsS[i] as number[],
      difference: difference(velocities[i] as Float32Array, velocities[0] as Float32Array),
    }));
  } finally {
    await worker.close();
  }
}

function inChild<T>(job: CreationJob | StepJob): T {
  const self = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, [...process.execArgv, self, '--measure', JSON.stringify(job)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (child.status !== 0) throw new Error(`${job.kind}: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').pop() as string) as T;
}

/** "bit-identical" or the largest absolute difference of `a` from `b`. */
function difference(a: Float32Array, b: Float32Array): string {
  let max = 0;
  let same = a.length === b.length;
  a.forEach((v, i) => {
    if (Object.is(v, b[i])) return;
    same = false;
    max = Math.max(max, Math.abs(v - (b[i] as number)));
  });
  return same ? 'bit-identical' : `max |Δ| ${max.toExponential(2)}`;
}

async function ensureCheckpoint(path: string, config: FluxConfig, cacheDir: string): Promise<void> {
  if (!existsSync(path)) await writeRandomFlux(path, config, 'BF16', false);
  await fluxQuantizedCache(await openFluxCheckpoint(path), QUANTIZED_8BIT, cacheDir);
}

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    keep: { type: 'boolean' },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '4' },
    levels: { type: 'string', default: LEVELS.join(',') },
    precisions: { type: 'string', default: 'int8,exact' },
    'skip-creation': { type: 'boolean' },
    'skip-step': { type: 'boolean' },
    measure: { type: 'string' },
  },
});

if (values.measure !== undefined) {
  const job = JSON.parse(values.measure) as CreationJob | StepJob;
  console.log(JSON.stringify(job.kind === 'creation' ? await measureCreation(job) : await measureSteps(job)));
  process.exit(0);
}
const levels = (values.levels ?? '').split(',') as Level[];
if (levels.length === 0 || levels.some((l) => !LEVELS.includes(l))) throw new Error(`--levels takes ${LEVELS.join(', ')}`);
const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'flux-lora-bench-session-graph-'));
mkdirSync(dir, { recursive: true });
const cacheDir = join(dir, 'cache');
try {
  const narrow = join(dir, 'flux-narrow-19-38-bf16.safetensors');
  const reduced = join(dir, 'flux-2-4-bf16.safetensors');
  if (!values['skip-creation']) await ensureCheckpoint(narrow, NARROW_CONFIG, cacheDir);
  if (!values['skip-step']) await ensureCheckpoint(reduced, REDUCED_CONFIG, cacheDir);
  for (let round = 1; round <= (values['skip-creation'] ? 0 : Number(values.rounds)); round++) {
    for (const lora of [true, false]) {
      for (const level of lora ? levels : [levels[0] as Level, levels.at(-1) as Level]) {
        const r = inChild<Measured>({ kind: 'creation', path: narrow, cacheDir, level, lora });
        console.log(
          `round ${round} | creation, full depth, hidden 256, ${lora ? 'LoRA inputs   ' : 'no LoRA inputs'} | ${level.padEnd(8)} | session ${r.sessionS.toFixed(2)} s, ${r.cpuS.toFixed(2)} CPU s`,
        );
      }
    }
  }
  if (!values['skip-step']) {
    for (const precision of (values.precisions ?? '').split(',') as FluxPrecision[]) {
      const results = inChild<StepMeasured[]>({ kind: 'step', path: reduced, cacheDir, levels, precision, steps: Number(values.steps) });
      results.forEach((r, i) => {
        const sorted = [...r.stepsS].sort((a, b) => a - b);
        const median = sorted[Math.floor((sorted.length - 1) / 2)] as number;
        console.log(
          `step, 2+4 blocks, ${precision === 'exact' ? 'exact  ' : 'go_fast'}, ${SIDE}² | ${(levels[i] as Level).padEnd(8)} | session ${r.sessionS.toFixed(2)} s, engine ${r.cpuS.toFixed(2)} CPU s | ` +
            `${sorted.length} steps alternating: median ${median.toFixed(2)} s, best ${(sorted[0] as number).toFixed(2)} s` +
            (i === 0 ? '' : ` | velocity against ${levels[0]}: ${r.difference}`),
        );
      });
    }
  }
} finally {
  if (!values.keep) rmSync(dir, { recursive: true, force: true });
}
