/**
 * go_fast cold and warm start at real shape: T5-XXL and the FLUX.1-schnell transformer loaded into a
 * fresh engine, first with an empty cache (the quantized weights are derived: read, bf16 → float32
 * and quantize on the pool, write) and then with the cache present. Each start runs in its own
 * process; each component is timed in two parts, deriving (or opening) its quantized cache and
 * creating its session (graph, reading the cache, prepacking), with the engine's memory after each and its user and
 * system CPU time and page faults while creating the session (bench/session-start.ts splits the transformer's further).
 * T5 takes go_fast's form (int8-mapped) unless --t5 names another.
 * Usage: npx tsx bench/cold-start.ts --dir <scratch folder: models/ as bench/real-shape-models.ts writes it> [--t5 int8-mapped|int8|int4] [--warm-only]
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openFluxCheckpoint } from '../src/models/flux/checkpoint.js';
import { fluxQuantizedCache } from '../src/models/flux/quantized-parameters.js';
import { FluxTransformer } from '../src/models/flux/transformer.js';
import { openTextEncoderCheckpoint } from '../src/models/text/checkpoint.js';
import { T5_KIND, T5Encoder, t5QuantizedCache, type T5Precision } from '../src/models/text/t5-encoder.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { QUANTIZED_8BIT } from '../src/weights/quantized-cache.js';
import { GIB, processCounters, processMemory } from './process-memory.js';
import { writeRealShapeModels } from './real-shape-models.js';

interface Part {
  label: string;
  deriveS: number;
  /** CPU seconds of this process (main thread and pool) while deriving, and of the engine while creating the session (user and system: system is mostly the kernel clearing fresh pages for the prepacked weights). */
  deriveCpuS: number;
  sessionUserS: number;
  sessionSysS: number;
  /** Minor page faults of the engine while creating the session. */
  sessionFaults: number;
  sourceBytes: number;
  cacheBytes: number;
  sessionS: number;
  engineRss: number;
  engineAnon: number;
}

/** The work's result, its wall seconds and what process `pid` used meanwhile (user and system CPU seconds, minor faults). */
async function timedS<T>(pid: () => number | 'self', work: () => Promise<T>): Promise<[T, number, ReturnType<typeof processCounters>]> {
  const started = performance.now();
  const before = processCounters(pid());
  const value = await work();
  const after = processCounters(pid());
  const used = { userS: after.userS - before.userS, sysS: after.sysS - before.sysS, minorFaults: after.minorFaults - before.minorFaults };
  return [value, (performance.now() - started) / 1000, used];
}

/** One start in this (child) process: T5, then the transformer, into one engine; prints JSON. */
async function start(models: string, cacheDir: string, t5Precision: Exclude<T5Precision, 'exact'>): Promise<void> {
  const worker = new InferenceWorker();
  const parts: Part[] = [];
  const enginePid = () => worker.status.pid as number;
  const engine = () => processMemory(enginePid());
  const started = performance.now();
  /** Derives (or opens) a component's quantized cache in this process, then creates its session in the engine. */
  const measure = async (label: string, source: string, derive: () => Promise<{ file: { path: string } }>, load: () => Promise<unknown>) => {
    const [cache, deriveS, derived] = await timedS(() => 'self', derive);
    const [, sessionS, session] = await timedS(enginePid, load);
    const memory = engine();
    parts.push({
      label,
      deriveS,
      deriveCpuS: derived.userS + derived.sysS,
      sessionUserS: session.userS,
      sessionSysS: session.sysS,
      sessionFaults: session.minorFaults,
      sourceBytes: statSync(source).size,
      cacheBytes: statSync(cache.file.path).size,
      sessionS,
      engineRss: memory.rss,
      engineAnon: memory.anon,
    });
  };
  const t5Path = join(models, 't5xxl_bf16.safetensors');
  await measure(
    `T5-XXL ${t5Precision}`,
    t5Path,
    async () => t5QuantizedCache(await openTextEncoderCheckpoint(t5Path, T5_KIND), t5Precision, cacheDir),
    () => T5Encoder.load(worker, t5Path, { precision: t5Precision, cacheDir }),
  );
  const fluxPath = join(models, 'flux1-schnell.safetensors');
  await measure(
    'transformer int8',
    fluxPath,
    async () => fluxQuantizedCache(await openFluxCheckpoint(fluxPath), QUANTIZED_8BIT, cacheDir),
    () => FluxTransformer.load(worker, fluxPath, { precision: 'int8', cacheDir }),
  );
  const totalS = (performance.now() - started) / 1000;
  const enginePeak = engine().peak;
  await worker.close();
  console.log(JSON.stringify({ totalS, parts, enginePeak, mainPeak: processMemory('self').peak }));
}

function child(args: string[]): { totalS: number; parts: Part[]; enginePeak: number; mainPeak: number } {
  const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--start', ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string);
}

const { values, positionals } = parseArgs({
  options: { start: { type: 'boolean' }, dir: { type: 'string' }, t5: { type: 'string', default: 'int8-mapped' }, 'warm-only': { type: 'boolean' } },
  allowPositionals: true,
});
const t5 = values.t5 as Exclude<T5Precision, 'exact'>;
if (values.start) {
  const [models, cacheDir] = positionals;
  await start(models as string, cacheDir as string, t5);
} else {
  if (values.dir === undefined) throw new Error('--dir <scratch folder> is required (about 55 GB)');
  const models = join(values.dir, 'models');
  mkdirSync(models, { recursive: true });
  await writeRealShapeModels(models);
  const cacheDir = join(values.dir, 'cache');
  const runs: [string, boolean][] = [
    ['cold (quantized weights derived)', true],
    ['warm (cache present)', false],
  ];
  for (const [label, cold] of runs.filter(([, cold]) => !(cold && values['warm-only']))) {
    if (cold) rmSync(join(cacheDir, 'quantized'), { recursive: true, force: true });
    const r = child([models, cacheDir, '--t5', t5]);
    console.log(
      `${label}: T5 + transformer go_fast in ${r.totalS.toFixed(1)} s | engine peak RSS ${(r.enginePeak / GIB).toFixed(2)} GiB, main ${(r.mainPeak / GIB).toFixed(2)} GiB`,
    );
    for (const p of r.parts) {
      const derive = cold
        ? `derive ${p.deriveS.toFixed(1)} s, ${p.deriveCpuS.toFixed(1)} CPU s (${(p.sourceBytes / 1e9 / p.deriveS).toFixed(2)} GB/s of stored weights)`
        : `open cache ${p.deriveS.toFixed(2)} s`;
      console.log(
        `    ${p.label}: ${derive}, session ${p.sessionS.toFixed(1)} s, engine ${p.sessionUserS.toFixed(1)} user + ${p.sessionSysS.toFixed(1)} sys CPU s, ${(p.sessionFaults / 1e6).toFixed(2)} M minor faults (${(p.cacheBytes / 1e9 / p.sessionS).toFixed(2)} GB/s of the ${(p.cacheBytes / 1e9).toFixed(2)} GB cache) | engine RSS after ${(p.engineRss / GIB).toFixed(2)} GiB (anonymous ${(p.engineAnon / GIB).toFixed(2)})`,
      );
    }
  }
}
