/**
 * LoRA hot-swap at real shape: a random FLUX.1 transformer (go_fast 8-bit) and random BFL-format
 * LoRAs of rank 16 and 64 on every linear, read through the LoRA cache (local files). Measures
 * what a prediction pays: switching LoRA (stacking + binding; files already parsed), changing only
 * the strength, and the per-step cost of an active LoRA against rank 0 at 512×512.
 * Usage: npx tsx bench/lora-switch.ts --model <flux1 .safetensors> [--cache <quantized cache dir>] [--steps 2]
 * (bench/e2e.ts --keep leaves a real-shape schnell file and its warm cache under its --dir.)
 */
import '../src/engine-telemetry-off.js';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bestTime } from './best-time.js';
import { keptArrays } from '../src/lora/apply.js';
import { LoraCache } from '../src/lora/cache.js';
import { FluxTransformer } from '../src/models/flux/transformer.js';
import type { FluxConfig } from '../src/models/flux/config.js';
import { expectedStoredShapes } from '../src/models/flux/layout.js';
import { NO_LOW_RANK } from '../src/models/common/low-rank.js';
import { CLIP_KIND } from '../src/models/text/clip-text.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { float32Tensor } from '../src/onnx/tensor-data.js';
import { imageIds } from '../src/pipeline/latents.js';
import { LoraPlanner, type PreparedLora } from '../src/predictor/loras.js';
import { randomFloats } from './random.js';
import { writeRandomCheckpoint } from './random-checkpoint.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, cache: { type: 'string' }, steps: { type: 'string' } } });
if (values.model === undefined) throw new Error('usage: npx tsx bench/lora-switch.ts --model <flux1 .safetensors> [--cache <dir>] [--steps 2]');
const steps = Number(values.steps ?? 2);
const dir = mkdtempSync(join(tmpdir(), 'flux-lora-bench-lora-'));

/** A BFL-format LoRA (`diffusion_model.<module>.lora_A/B.weight`) of `rank` on every linear module. */
async function writeLora(path: string, config: FluxConfig, rank: number): Promise<number> {
  const shapes: [string, number[]][] = [];
  let params = 0;
  for (const [key, shape] of expectedStoredShapes(config, 'bfl')) {
    if (shape.length !== 2 || !key.endsWith('.weight')) continue;
    const [out, inF] = shape as [number, number];
    const module = `diffusion_model.${key.slice(0, -'.weight'.length)}`;
    shapes.push([`${module}.lora_A.weight`, [rank, inF]], [`${module}.lora_B.weight`, [out, rank]]);
    params += rank * (inF + out);
  }
  await writeRandomCheckpoint(path, shapes, 'BF16');
  return params;
}

const ms = (t: number) => `${(performance.now() - t).toFixed(1)} ms`;
const worker = new InferenceWorker();
try {
  const started = performance.now();
  const transformer = await FluxTransformer.load(worker, values.model, { precision: 'int8', cacheDir: values.cache ?? join(dir, 'cache') });
  console.log(`transformer (int8) loaded in ${ms(started)}`);
  const loraDir = join(dir, 'loras');
  mkdirSync(loraDir);
  const planner = new LoraPlanner(new LoraCache({ dir: join(dir, 'lora-cache'), localRoot: loraDir }));
  const clip = CLIP_KIND.fromConfig('bench', {
    vocab_size: 49408,
    hidden_size: 768,
    num_attention_heads: 12,
    intermediate_size: 3072,
    num_hidden_layers: 12,
    max_position_embeddings: 77,
  });
  const quiet = () => undefined;
  const prepared: PreparedLora[] = [];
  for (const rank of [16, 64]) {
    const params = await writeLora(join(loraDir, `r${rank}.safetensors`), transformer.config, rank);
    const t = performance.now();
    prepared.push(...(await planner.prepare([{ input: `rank ${rank}`, source: join(loraDir, `r${rank}.safetensors`), scale: 0.8 }])));
    console.log(`rank ${rank}: ${(params / 1e6).toFixed(1)} M parameters; first fetch + parse ${ms(t)}`);
  }
  // Per-step inputs at 512×512 (1024 image tokens) with schnell's 256 text tokens.
  const [tokens, text] = [1024, 256];
  const c = transformer.config;
  const inputs = {
    hiddenStates: float32Tensor([1, tokens, c.inChannels], randomFloats(tokens * c.inChannels, 1)),
    encoderHiddenStates: float32Tensor([1, text, c.contextDim], randomFloats(text * c.contextDim, 2)),
    pooledProjections: float32Tensor([1, c.pooledDim], randomFloats(c.pooledDim, 3)),
    timestep: [0.7],
    ...(c.guidanceEmbed ? { guidance: [3.5] } : {}),
    imgIds: imageIds(64, 64),
    txtIds: new Float32Array(text * 3),
  };
  const stepTime = () => bestTime(steps, () => transformer.forward(inputs));
  const base = await stepTime();
  console.log(`step without LoRA (rank 0): ${(base / 1000).toFixed(2)} s (best of ${steps})`);
  const bindSingle = async (lora: (typeof prepared)[number]) => {
    const plan = planner.plan([lora], c, clip, quiet);
    await transformer.setLowRank(plan.transformer(lora.path), { transfer: true });
  };
  for (const lora of prepared) {
    const other = prepared.find((p) => p !== lora) ?? lora;
    await transformer.setLowRank(planner.plan([other], c, clip, quiet).transformer(), { transfer: true });
    // Stacked and moved to the worker (several LoRAs at once, or a single one not kept yet).
    const t = performance.now();
    const state = planner.plan([lora], c, clip, quiet).transformer();
    const planned = performance.now() - t;
    await transformer.setLowRank(state, { transfer: true });
    const switched = performance.now() - t;
    // A single LoRA as the predictor binds it: matrices kept in the worker once, then bound by reference.
    const k = performance.now();
    await worker.keep(lora.path, keptArrays(lora.lora));
    const keptMs = performance.now() - k;
    await worker.keep(other.path, keptArrays(other.lora));
    await bindSingle(other);
    const r = performance.now();
    await bindSingle(lora);
    const byReference = performance.now() - r;
    const s = performance.now();
    await transformer.setLowRankScales([0.5]);
    const scaled = performance.now() - s;
    const step = await stepTime();
    console.log(
      `${lora.input}: switch stacked ${switched.toFixed(0)} ms (stacking ${planned.toFixed(0)} ms, moving ${(switched - planned).toFixed(0)} ms) | kept once ${keptMs.toFixed(0)} ms, then switch by reference ${byReference.toFixed(1)} ms | strength change ${scaled.toFixed(2)} ms | step ${(step / 1000).toFixed(2)} s = ${(((step - base) / base) * 100).toFixed(1)}% over rank 0`,
    );
  }
  await transformer.setLowRank(NO_LOW_RANK);
  await transformer.release();
} finally {
  await worker.close();
  rmSync(dir, { recursive: true, force: true });
}
