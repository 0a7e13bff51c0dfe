/**
 * End to end at real shape: a folder of single files as ComfyUI users keep them, with random
 * bf16 weights (flux1-schnell 11.9 B params, t5xxl 4.8 B, clip_l, ae) and small tokenizers.
 * One prediction (schnell, 512×512, 4 steps, go_fast) in a fresh process with a cold cache
 * (8-bit weights derived) and again warm — total time, each stage, peak RSS. Then the
 * built-in model: `flux-lora predict` wall time from a cold process, first use and cached.
 * Usage: npx tsx bench/e2e.ts [--dir <scratch folder, ≥ 55 GB free>] [--keep] [--skip-real]
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Predictor } from '../src/predictor/predictor.js';
import { builtinColdStart } from './builtin-cold-start.js';
import { processMemory } from './process-memory.js';
import { writeRealShapeModels } from './real-shape-models.js';

const INPUT = { prompt: 'a photo of TOK', model: 'schnell', megapixels: '0.25', go_fast: true, seed: 1, disable_safety_checker: true };

/** One prediction in this (child) process; prints its metrics, load lines and the engine's peak RSS as JSON. */
async function measure(modelDir: string, cacheDir: string, outputDir: string): Promise<void> {
  const lines: string[] = [];
  const started = performance.now();
  // The random folder has no safety pair; the checker's cost is measured by bench/safety.ts.
  const predictor = await Predictor.create({ modelDir, cacheDir, safety: 'disabled' });
  const result = await predictor.predict(INPUT, { outputDir, log: (l) => lines.push(l) });
  const enginePeak = processMemory(predictor.engine.pid as number).peak;
  await predictor.close();
  console.log(
    JSON.stringify({
      wallMs: performance.now() - started,
      metrics: result.metrics,
      lines: lines.filter((l) => /^(Loaded|Releasing)/.test(l)),
      peak: enginePeak,
    }),
  );
}

function child(args: string[]): { metrics: Record<string, number>; lines: string[]; peak: number; wallMs: number } {
  const self = fileURLToPath(import.meta.url);
  const run = spawnSync(process.execPath, [...process.execArgv, self, '--measure', ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string);
}

const { values } = parseArgs({
  options: { measure: { type: 'boolean' }, dir: { type: 'string' }, keep: { type: 'boolean' }, 'skip-real': { type: 'boolean' } },
  allowPositionals: true,
  strict: false,
});
if (values.measure) {
  const [modelDir, cacheDir, outputDir] = process.argv.slice(3);
  await measure(modelDir as string, cacheDir as string, outputDir as string);
} else {
  const dir = typeof values.dir === 'string' ? values.dir : mkdtempSync(join(tmpdir(), 'flux-lora-bench-e2e-'));
  mkdirSync(dir, { recursive: true });
  try {
    const out = join(dir, 'out');
    mkdirSync(out, { recursive: true });
    const builtinCache = join(dir, 'builtin-cache');
    rmSync(builtinCache, { recursive: true, force: true });
    console.log(
      `built-in model, flux-lora predict (1024², 28 steps) from a cold process: first use ${builtinColdStart(builtinCache, out).toFixed(2)} s, cached ${builtinColdStart(builtinCache, out).toFixed(2)} s`,
    );
    if (!values['skip-real']) {
      const models = join(dir, 'models');
      mkdirSync(models, { recursive: true });
      await writeRealShapeModels(models);
      for (const label of ['cold cache (8-bit weights derived)', 'warm cache']) {
        const r = child([models, join(dir, 'cache'), out]);
        const m = r.metrics;
        console.log(
          `schnell-shape 512², 4 steps, go_fast, ${label}: total ${m.predict_time?.toFixed(1)} s (process ${(r.wallMs / 1000).toFixed(1)} s) | load ${m.load_time?.toFixed(1)} s, text ${m.text_time?.toFixed(1)} s, denoise ${m.denoise_time?.toFixed(1)} s, decode ${m.decode_time?.toFixed(1)} s, encode ${m.encode_time?.toFixed(2)} s | engine peak RSS ${(r.peak / 2 ** 30).toFixed(2)} GiB`,
        );
        for (const line of r.lines) console.log(`    ${line}`);
      }
    }
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}
