/**
 * Consecutive predictions in one process at real shape (the folder of bench/real-shape-models.ts):
 * three go_fast predictions (schnell, 512×512, 4 steps) with different prompts, on the default
 * memory budget. Prints the memory plan, then per prediction: total time, each stage, the models it
 * loaded and released, and the engine's peak memory during it (all resident pages, and the anonymous
 * part sampled every 250 ms: go_fast T5 is mapped from its cache file, page cache the kernel can drop)
 * and the main process's.
 * Predictions 2 and 3 should load nothing. Run bench/cold-start.ts first to derive the 8-bit cache,
 * or the first prediction derives it.
 * Usage: npx tsx bench/consecutive.ts --dir <scratch folder, ≥ 55 GB free> [--budget <GiB>] [--predictions 1–3]
 */
import '../src/engine-telemetry-off.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Predictor } from '../src/predictor/predictor.js';
import { GIB, processMemory } from './process-memory.js';
import { writeRealShapeModels } from './real-shape-models.js';

const PROMPTS = ['a photo of TOK', 'a red cube on a table', 'a cat in the snow'];

const { values } = parseArgs({ options: { dir: { type: 'string' }, budget: { type: 'string' }, predictions: { type: 'string', default: '3' } } });
if (values.dir === undefined) throw new Error('--dir <scratch folder> is required (about 55 GB)');
const models = join(values.dir, 'models');
mkdirSync(models, { recursive: true });
await writeRealShapeModels(models);
const predictor = await Predictor.create({
  modelDir: models,
  cacheDir: join(values.dir, 'cache'),
  // The random folder has no safety pair; the checker's cost is measured by bench/safety.ts.
  safety: 'disabled',
  ...(values.budget === undefined ? {} : { memoryBudgetBytes: Number(values.budget) * GIB }),
});
try {
  const plan = await predictor.memoryPlan('schnell', true);
  const held = plan.components.reduce((sum, c) => sum + c.bytes, 0);
  console.log(
    `memory plan: ${plan.components.map((c) => `${c.label} ${(c.bytes / GIB).toFixed(2)} GiB`).join(', ')} = ${(held / GIB).toFixed(2)} of ${(plan.budgets.cpu / GIB).toFixed(2)} GiB: ${plan.fits ? 'all stay loaded' : 'loaded in turn'}`,
  );
  for (const [i, prompt] of PROMPTS.slice(0, Number(values.predictions)).entries()) {
    const engine = predictor.engine.pid;
    // Peak resident memory from here on (VmHWM restarts at the current RSS).
    if (engine !== undefined) writeFileSync(`/proc/${engine}/clear_refs`, '5');
    // The anonymous part's peak, sampled (VmHWM counts mapped file pages too).
    let peakAnon = 0;
    const sampler = setInterval(() => {
      const pid = predictor.engine.pid;
      if (pid !== undefined) peakAnon = Math.max(peakAnon, processMemory(pid).anon);
    }, 250);
    const lines: string[] = [];
    const input = { prompt, model: 'schnell', megapixels: '0.25', go_fast: true, seed: i + 1, disable_safety_checker: true };
    const result = await predictor.predict(input, { outputDir: join(values.dir, 'out'), log: (l) => lines.push(l) });
    clearInterval(sampler);
    const m = result.metrics;
    const memory = processMemory(predictor.engine.pid as number);
    const loads = lines.filter((l) => l.startsWith('Loaded'));
    console.log(
      `prediction ${i + 1} ("${prompt}"): total ${m.predict_time.toFixed(1)} s | load ${m.load_time.toFixed(1)} s, text ${m.text_time.toFixed(1)} s, denoise ${m.denoise_time.toFixed(1)} s, decode ${m.decode_time.toFixed(1)} s, encode ${m.encode_time.toFixed(2)} s | ${loads.length} model loads | engine peak RSS ${(memory.peak / GIB).toFixed(2)} GiB, anonymous ${(peakAnon / GIB).toFixed(2)} GiB (after: ${(memory.anon / GIB).toFixed(2)} anonymous + ${(memory.file / GIB).toFixed(2)} file-backed), main ${(processMemory('self').rss / GIB).toFixed(2)} GiB`,
    );
    for (const line of lines.filter((l) => /^(Loaded|Releasing)/.test(l))) console.log(`    ${line}`);
  }
} finally {
  await predictor.close();
}
