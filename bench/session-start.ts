/**
 * Where the go_fast transformer's session creation (the warm start, docs/onnxruntime.md §10.9–10.10)
 * goes, and what onnxruntime 1.30 offers against it. On the real-shape FLUX.1-schnell transformer and
 * its 8-bit cache as bench/cold-start.ts leaves them, each variant is created in a fresh process:
 *   transformer            the session go_fast creates (LoRA inputs on every linear, weights prepacked, its session settings);
 *   transformer-graph      the same graph with prepacking off: onnxruntime's graph optimizers and planner;
 *   transformer-no-lora    the same without the LoRA inputs, prepacking off;
 *   transformer-halves     the transformer's two halves as two graphs (the embedders, the 19 double blocks and the
 *                          final layer; the 38 single blocks and the final layer), as go_fast builds them, created
 *                          at once on two worker threads: what a transformer split into two sessions would take;
 *   transformer-halves-processes  the same two halves created at once in two processes;
 *   linears                the cache's MatMulNBits alone (no other node), prepacked by one session;
 *   linears-2              the same linears prepacked by two sessions created at once on two worker threads;
 *   linears-saved          (--saved, ≈ 25 GB of free disk) the linears' session saved with its prepacked
 *                          weights (session.save_external_prepacked_constant_initializers), then a session
 *                          created from that file; its outputs are compared with linears' (and linears' with
 *                          the previous linears run: is the kernel deterministic?).
 * Usage: npx tsx bench/session-start.ts --dir <scratch folder of bench/cold-start.ts> [--saved] [--only <variant,…>]
 */
import '../src/engine-telemetry-off.js';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { externalRef } from '../src/models/common/stored-weights.js';
import { openFluxCheckpoint } from '../src/models/flux/checkpoint.js';
import { buildFluxGraph } from '../src/models/flux/graph.js';
import { fluxQuantizedCache, quantizedParameters } from '../src/models/flux/quantized-parameters.js';
import { fluxSessionSettings } from '../src/models/flux/transformer.js';
import { GraphBuilder, type BuiltModel, type Value } from '../src/onnx/graph.js';
import { matMulNBits } from '../src/onnx/ops/index.js';
import { sessionOptions, type SessionSettings } from '../src/onnx/session-options.js';
import { startModuleWorker } from '../src/util/module-worker.js';
import { QUANTIZED_8BIT } from '../src/weights/quantized-cache.js';
import { GIB, processCounters, processMemory } from './process-memory.js';

const VARIANTS = [
  'transformer',
  'transformer-graph',
  'transformer-no-lora',
  'transformer-halves',
  'transformer-halves-processes',
  'linears',
  'linears-2',
  'linears-saved',
] as const;
type Variant = (typeof VARIANTS)[number];

interface Paths {
  flux: string;
  cacheDir: string;
  /** Where this bench writes (linears' outputs, the saved form). */
  work: string;
}

/** The go_fast transformer's graph; `half` 0 keeps only its double blocks, 1 only its single blocks (each with the embedders and the final layer). */
async function transformerGraph(paths: Paths, lora: boolean, half?: number): Promise<BuiltModel> {
  const checkpoint = await openFluxCheckpoint(paths.flux);
  const cache = await fluxQuantizedCache(checkpoint, QUANTIZED_8BIT, paths.cacheDir);
  const config = half === undefined ? checkpoint.config : { ...checkpoint.config, [half === 0 ? 'singleBlocks' : 'doubleBlocks']: 0 };
  return buildFluxGraph(config, quantizedParameters(checkpoint, cache.file, QUANTIZED_8BIT), { lora });
}

/** Sessions created at once, one per worker thread, each from the graph `graph` names for its part; their creation seconds. */
function createAtOnce(paths: Paths, graph: 'linears' | 'transformer'): Promise<number[]> {
  return Promise.all(
    [0, 1].map(
      (part) =>
        new Promise<number>((resolve, reject) => {
          const worker = startModuleWorker(import.meta.url, 'session-start', { workerData: { paths, part, graph } });
          worker.once('message', resolve);
          worker.once('error', reject);
        }),
    ),
  );
}

/** Every `parts`-th MatMulNBits of the transformer's 8-bit cache from `part` on, each reading an input of ones [1, k] and giving its first output. */
async function linearsGraph(paths: Paths, part = 0, parts = 1): Promise<BuiltModel> {
  const checkpoint = await openFluxCheckpoint(paths.flux);
  const cache = (await fluxQuantizedCache(checkpoint, QUANTIZED_8BIT, paths.cacheDir)).file;
  const names = cache
    .names()
    .filter((n) => n.endsWith('.qweight'))
    .map((n) => n.slice(0, -'.qweight'.length))
    .sort();
  const g = new GraphBuilder(`linears ${part}/${parts}`);
  const inputs = new Map<number, Value>();
  names.forEach((name, i) => {
    if (i % parts !== part) return;
    const [n, blocks, blockBytes] = cache.info(`${name}.qweight`).shape as [number, number, number];
    const k = blocks * blockBytes;
    if (!inputs.has(k)) inputs.set(k, g.input(`x${k}`, 'float32', [1, k]));
    const t = (suffix: string) => g.external(`${name}.${suffix}`, externalRef(cache.info(`${name}.${suffix}`)));
    const y = matMulNBits(
      g,
      inputs.get(k) as Value,
      { data: t('qweight'), scales: t('scales'), zeroPoints: t('zero_points'), n, k, bits: 8, blockSize: 128 },
      { accuracyLevel: 4 },
    );
    g.output(y, `${name} [${n}x${k}]`);
  });
  return g.build();
}

/** Creates a session from `model` (or from the saved form's file) and returns the seconds it took. */
async function create(model: BuiltModel, settings: { session?: SessionSettings; save?: string; from?: string } = {}): Promise<[ort.InferenceSession, number]> {
  const options = sessionOptions(model, settings.session);
  const session = (options.extra as { session: Record<string, string> }).session;
  if (settings.save !== undefined) {
    options.optimizedModelFilePath = join(settings.save, 'model.onnx');
    Object.assign(session, {
      optimized_model_external_initializers_file_name: 'model.data',
      optimized_model_external_initializers_min_size_in_bytes: '1024',
      save_external_prepacked_constant_initializers: '1',
    });
  }
  if (settings.from !== undefined) delete session.model_external_initializers_file_folder_path;
  const started = performance.now();
  const created = await ort.InferenceSession.create((settings.from ?? model.bytes) as string, options);
  return [created, (performance.now() - started) / 1000];
}

/** Every output of a run on inputs of ones, by name (a linear's name and shape). */
async function outputs(session: ort.InferenceSession): Promise<Map<string, Float32Array>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    const k = Number(name.slice(1));
    feeds[name] = new ort.Tensor('float32', new Float32Array(k).fill(1), [1, k]);
  }
  const out = await session.run(feeds);
  return new Map(session.outputNames.map((name) => [name, out[name]?.data as Float32Array]));
}

interface Difference {
  /** Outputs (linears) with any value not bit-identical, how many of them hold a value that is not finite (NaN, ±∞), and the first few. */
  differing: number;
  notFinite: number;
  examples: string[];
  /** The largest absolute difference between finite values. */
  maxAbs: number;
}

function compare(run: Map<string, Float32Array>, reference: Map<string, Float32Array>): Difference {
  const result: Difference = { differing: 0, notFinite: 0, examples: [], maxAbs: 0 };
  for (const [name, values] of run) {
    const expected = reference.get(name) as Float32Array;
    let same = true;
    let notFinite = false;
    values.forEach((v, i) => {
      const e = expected[i] as number;
      if (Object.is(v, e)) return;
      same = false;
      if (!Number.isFinite(v) || !Number.isFinite(e)) notFinite = true;
      else result.maxAbs = Math.max(result.maxAbs, Math.abs(v - e));
    });
    if (same) continue;
    result.differing++;
    if (notFinite) result.notFinite++;
    if (result.examples.length < 3) result.examples.push(name);
  }
  return result;
}

const saveOutputs = (file: string, run: Map<string, Float32Array>) => writeFileSync(file, JSON.stringify([...run].map(([name, v]) => [name, Array.from(v)])));
const loadOutputs = (file: string) =>
  new Map((JSON.parse(readFileSync(file, 'utf8')) as [string, number[]][]).map(([name, v]) => [name, Float32Array.from(v)]));

interface Measured {
  sessionS: number[];
  userS: number;
  sysS: number;
  minorFaults: number;
  peak: number;
  /** linears and linears-saved: their outputs against the reference, memory right after creation; linears-saved: the saved form's size. */
  difference?: Difference;
  anon?: number;
  file?: number;
  savedBytes?: number;
}

/** Measures `variant` in a child process of this script (`half`: only that half of the transformer). */
function measureInChild(dir: string, variant: Variant, half?: number): Promise<Measured> {
  const args = [
    ...process.execArgv,
    fileURLToPath(import.meta.url),
    '--dir',
    dir,
    '--variant',
    variant,
    ...(half === undefined ? [] : ['--half', String(half)]),
  ];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 2 ** 26 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${variant}: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop() as string));
    });
  });
}

/** The two halves created at once in two processes: both session times, their CPU and faults summed, the larger peak. */
async function halvesInProcesses(dir: string): Promise<Measured> {
  const halves = await Promise.all([0, 1].map((half) => measureInChild(dir, 'transformer', half)));
  const sum = (key: 'userS' | 'sysS' | 'minorFaults') => halves.reduce((total, h) => total + h[key], 0);
  return {
    sessionS: halves.flatMap((h) => h.sessionS),
    userS: sum('userS'),
    sysS: sum('sysS'),
    minorFaults: sum('minorFaults'),
    peak: Math.max(...halves.map((h) => h.peak)),
  };
}

/** One variant in this (child) process (`half`: transformer only, that half of it); prints JSON. */
async function measure(variant: Variant, paths: Paths, dir: string, half?: number): Promise<void> {
  if (variant === 'transformer-halves-processes') {
    console.log(JSON.stringify(await halvesInProcesses(dir)));
    return;
  }
  let before = processCounters('self');
  let savedBytes: number | undefined;
  let sessionS: number[] = [];
  let difference: Difference | undefined;
  const afterCreation: { anon?: number; file?: number } = {};
  if (variant === 'linears-2' || variant === 'transformer-halves') {
    sessionS = await createAtOnce(paths, variant === 'linears-2' ? 'linears' : 'transformer');
  } else if (variant.startsWith('transformer')) {
    const graph = await transformerGraph(paths, variant !== 'transformer-no-lora', half);
    const [session, s] = await create(graph, { session: fluxSessionSettings({ prepack: variant === 'transformer' }) });
    sessionS = [s];
    await session.release();
  } else {
    const model = await linearsGraph(paths);
    const saved = join(paths.work, 'saved');
    if (variant === 'linears-saved') {
      rmSync(saved, { recursive: true, force: true });
      mkdirSync(saved, { recursive: true });
      const [writer] = await create(model, { save: saved });
      await writer.release();
      savedBytes = readdirSync(saved).reduce((sum, file) => sum + statSync(join(saved, file)).size, 0);
      // Only the session created from the saved form counts: the peak resets and the counters start here.
      writeFileSync('/proc/self/clear_refs', '5');
      before = processCounters('self');
    }
    const [session, s] = await create(model, variant === 'linears-saved' ? { from: join(saved, 'model.onnx') } : {});
    sessionS = [s];
    const created = processMemory('self');
    Object.assign(afterCreation, { anon: created.anon, file: created.file });
    const reference = join(paths.work, 'linears-outputs.json');
    const run = await outputs(session);
    // linears compares with the previous linears run when there is one (is the kernel deterministic?), linears-saved with linears.
    if (existsSync(reference)) difference = compare(run, loadOutputs(reference));
    if (variant === 'linears') saveOutputs(reference, run);
    await session.release();
  }
  const after = processCounters('self');
  const memory = processMemory('self');
  console.log(
    JSON.stringify({
      sessionS,
      userS: after.userS - before.userS,
      sysS: after.sysS - before.sysS,
      minorFaults: after.minorFaults - before.minorFaults,
      peak: memory.peak,
      difference,
      savedBytes,
      ...afterCreation,
    }),
  );
}

if (!isMainThread) {
  const { paths, part, graph } = workerData as { paths: Paths; part: number; graph: 'linears' | 'transformer' };
  const [session, s] = await (graph === 'linears'
    ? create(await linearsGraph(paths, part, 2))
    : create(await transformerGraph(paths, true, part), { session: fluxSessionSettings() }));
  await session.release();
  parentPort?.postMessage(s);
} else {
  const { values } = parseArgs({
    options: { dir: { type: 'string' }, saved: { type: 'boolean' }, only: { type: 'string' }, variant: { type: 'string' }, half: { type: 'string' } },
  });
  if (values.dir === undefined) throw new Error('--dir <scratch folder of bench/cold-start.ts> is required');
  const paths: Paths = {
    flux: join(values.dir, 'models', 'flux1-schnell.safetensors'),
    cacheDir: join(values.dir, 'cache'),
    work: join(values.dir, 'session-start'),
  };
  if (values.variant !== undefined) {
    await measure(values.variant as Variant, paths, values.dir, values.half === undefined ? undefined : Number(values.half));
    process.exit(0);
  }
  mkdirSync(paths.work, { recursive: true });
  const chosen = values.only?.split(',') ?? VARIANTS.filter((v) => v !== 'linears-saved' || values.saved);
  for (const variant of VARIANTS.filter((v) => chosen.includes(v))) {
    const r = await measureInChild(values.dir, variant);
    const against = variant === 'linears' ? 'the previous linears run' : 'linears';
    const d = r.difference;
    const identical =
      d === undefined
        ? ''
        : ` | outputs against ${against}: ${d.differing === 0 ? 'bit-identical' : `${d.differing} linears differ (${d.notFinite} with values not finite; finite values by ≤ ${d.maxAbs.toExponential(2)}), e.g. ${d.examples.join(', ')}`}`;
    const created =
      r.anon === undefined ? '' : ` | after creation ${(r.anon / GIB).toFixed(2)} GiB anonymous, ${((r.file ?? 0) / GIB).toFixed(2)} GiB file-backed`;
    const saved = r.savedBytes === undefined ? '' : ` | saved form ${(r.savedBytes / 1e9).toFixed(2)} GB`;
    console.log(
      `${variant.padEnd(28)} session ${r.sessionS.map((s: number) => `${s.toFixed(1)} s`).join(' ‖ ')} | process ${r.userS.toFixed(1)} user + ${r.sysS.toFixed(1)} sys CPU s, ${(r.minorFaults / 1e6).toFixed(2)} M minor faults, peak RSS (anonymous + file-backed) ${(r.peak / GIB).toFixed(2)} GiB${created}${identical}${saved}`,
    );
  }
  rmSync(join(paths.work, 'saved'), { recursive: true, force: true });
}
