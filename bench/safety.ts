/**
 * The safety checker at real shapes with random weights: stage 1 a CLIP ViT-L/14 vision tower
 * + projection in F16 (the CompVis layout), stage 2 a ViT-base/16 classifier in F32 (the
 * Falconsai layout), both processors at their real defaults (224). Checks four 1024×1024
 * images with every concept threshold at −1, so all four are flagged and stage 2 runs four
 * times (the worst case); stage 1 alone (nothing flagged) is timed too. Load, check times and
 * peak RSS are measured in a child process. Targets: check ≤ 3 s, peak ≤ 2 GB resident.
 * Usage: npx tsx bench/safety.ts
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIP_VISION_KIND } from '../src/models/safety/clip-vision.js';
import { VIT_CLASSIFIER_KIND } from '../src/models/safety/vit-classifier.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { SafetyChecker, type SafetyPaths } from '../src/pipeline/safety-checker.js';
import { f32ToF16 } from '../src/weights/dtypes.js';
import { writeSafetensors } from '../src/weights/safetensors-writer.js';
import { randomFloats } from './random.js';

const CLIP_VIT_L14 = {
  architectures: ['StableDiffusionSafetyChecker'],
  projection_dim: 768,
  vision_config: {
    hidden_size: 1024,
    intermediate_size: 4096,
    num_attention_heads: 16,
    num_hidden_layers: 24,
    patch_size: 14,
    image_size: 224,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
  },
};
const VIT_BASE16 = {
  architectures: ['ViTForImageClassification'],
  hidden_size: 768,
  intermediate_size: 3072,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  patch_size: 16,
  image_size: 224,
  hidden_act: 'gelu',
  layer_norm_eps: 1e-12,
  id2label: { 0: 'normal', 1: 'nsfw' },
};

/** Random weights ~ U(±1/√fan_in), norm scales around 1; thresholds −1 so every image is flagged. */
async function writeRandom(folder: string, config: object, shapes: Map<string, number[]>, dtype: 'F16' | 'F32'): Promise<void> {
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'config.json'), JSON.stringify(config));
  const tensors = [...shapes].map(([name, shape], i) => ({
    name,
    dtype,
    shape,
    data: async function* () {
      const fanIn = shape.slice(1).reduce((s, d) => s * d, 1);
      const values = randomFloats(
        shape.reduce((s, d) => s * d, 1),
        i * 7919 + 1,
        shape.length >= 2 ? 1 / Math.sqrt(fanIn) : 0.02,
      );
      if (/norm(\d|_before|_after)?\.weight$/.test(name)) values.forEach((v, j) => (values[j] = 1 + v));
      if (name.endsWith('embeds_weights')) values.fill(-1);
      yield new Uint8Array(dtype === 'F16' ? f32ToF16(values).buffer : values.buffer);
    },
  }));
  await writeSafetensors(join(folder, 'model.safetensors'), tensors);
}

interface Timing {
  ms: number;
  cpuMs: number;
}
interface Run {
  stage1: Timing;
  check: Timing;
}

/** Forward FLOPs of one image through a tower: 2·(linear weights)·T plus attention 4·T²·H per layer. */
function towerGflop(c: { hidden_size: number; intermediate_size: number; num_hidden_layers: number; patch_size: number; image_size: number }): number {
  const t = (c.image_size / c.patch_size) ** 2 + 1;
  const h = c.hidden_size;
  return (c.num_hidden_layers * (2 * (4 * h * h + 2 * h * c.intermediate_size) * t + 4 * t * t * h)) / 1e9;
}

function peakRss(): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
}

async function measure(paths: SafetyPaths): Promise<void> {
  const worker = new InferenceWorker();
  const t = performance.now();
  const checker = await SafetyChecker.load(worker, paths);
  const loadMs = performance.now() - t;
  const images = [1, 2, 3, 4].map((seed) => ({
    width: 1024,
    height: 1024,
    data: Uint8Array.from(randomFloats(1024 * 1024 * 3, seed, 1), (v) => Math.round(127.5 + 127.5 * v)),
  }));
  const runs: Run[] = [];
  const timed = async (fn: () => Promise<unknown>) => {
    const [t0, cpu0] = [performance.now(), process.cpuUsage()];
    await fn();
    const cpu = process.cpuUsage(cpu0);
    return { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
  };
  for (let i = 0; i < 3; i++) {
    const stage1 = await timed(() => checker.stage1.run(checker.stage1.preprocess(images.map((image, index) => ({ image, index })))));
    const check = await timed(async () => {
      if (!(await checker.check(images)).every((v) => v.stage1Flagged)) throw new Error('the benchmark expects every image flagged');
    });
    runs.push({ stage1, check });
  }
  await checker.release();
  await worker.close();
  console.log(JSON.stringify({ loadMs, runs, peak: peakRss() }));
}

if (process.argv[2] === '--measure') {
  await measure(JSON.parse(process.argv[3] as string) as SafetyPaths);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'flux-lora-bench-safety-'));
  try {
    const paths = { checker: join(dir, 'safety_checker'), classifier: join(dir, 'nsfw_image_detection') };
    let t = performance.now();
    await writeRandom(paths.checker, CLIP_VIT_L14, CLIP_VISION_KIND.expected(CLIP_VISION_KIND.fromConfig('bench', CLIP_VIT_L14)), 'F16');
    await writeRandom(paths.classifier, VIT_BASE16, VIT_CLASSIFIER_KIND.expected(VIT_CLASSIFIER_KIND.fromConfig('bench', VIT_BASE16)), 'F32');
    console.log(`random weights written in ${((performance.now() - t) / 1000).toFixed(1)} s (CLIP ViT-L/14 F16 + ViT-base/16 F32)`);
    t = performance.now();
    const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--measure', JSON.stringify(paths)], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`measurement failed: ${child.stderr.trim().split('\n').slice(-3).join(' ')}`);
    const r = JSON.parse(child.stdout.trim().split('\n').pop() as string) as { loadMs: number; runs: Run[]; peak: number };
    const stage1Gflop = 4 * towerGflop(CLIP_VIT_L14.vision_config);
    const checkGflop = stage1Gflop + 4 * towerGflop(VIT_BASE16);
    const s = (t: Timing, gflop: number) =>
      `${(t.ms / 1000).toFixed(2)} s (CPU ${(t.cpuMs / 1000).toFixed(2)} s, ${(gflop / (t.ms / 1000)).toFixed(0)} GFLOP/s)`;
    console.log(`load both stages: ${(r.loadMs / 1000).toFixed(2)} s`);
    r.runs.forEach((run, i) =>
      console.log(
        `run ${i + 1}: stage 1 only, 4 images (${stage1Gflop.toFixed(0)} GFLOP) ${s(run.stage1, stage1Gflop)}; check, all 4 flagged (+4× stage 2, ${checkGflop.toFixed(0)} GFLOP) ${s(run.check, checkGflop)}`,
      ),
    );
    const best = (pick: (run: Run) => Timing) => Math.min(...r.runs.map((run) => pick(run).ms)) / 1000;
    console.log(
      `best: stage 1 ${best((run) => run.stage1).toFixed(2)} s, check ${best((run) => run.check).toFixed(2)} s; peak RSS ${(r.peak / 2 ** 30).toFixed(2)} GiB (targets: check ≤ 3 s, ≤ 2 GB resident)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
