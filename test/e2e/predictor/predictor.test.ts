import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuiltinModel } from '../../../src/builtin/tiny-model.js';
import { ImageInputError } from '../../../src/images/errors.js';
import { EngineStoppedError, RunCancelledError } from '../../../src/onnx/errors.js';
import { InputValidationError } from '../../../src/predictor/inputs.js';
import { AllImagesUnsafeError, Predictor, type PredictOptions, type Progress } from '../../../src/predictor/predictor.js';
import { writeTinySafetyPair } from '../../../src/builtin/tiny-safety.js';
import type { SafetyPaths } from '../../../src/pipeline/safety-checker.js';
import { f32ToF16 } from '../../../src/weights/dtypes.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/weights/safetensors-writer.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('predictor-');
let predictor: Predictor;
let runs = 0;

beforeAll(async () => {
  predictor = await Predictor.create({ cacheDir: join(tmp(), 'cache') });
});
afterAll(async () => {
  await predictor.close();
});

/** Runs a prediction into a fresh folder; returns the files' bytes by name, the logs and the progress. */
async function run(input: Record<string, unknown>, options: Partial<PredictOptions> = {}, on: Predictor = predictor) {
  const outputDir = join(tmp(), `out-${runs++}`);
  const logs: string[] = [];
  const progress: Progress[] = [];
  const onProgress = (p: Progress) => {
    progress.push(p);
    options.onProgress?.(p);
  };
  const result = await on.predict(input, { outputDir, log: (l) => logs.push(l), ...options, onProgress });
  const files = Object.fromEntries(readdirSync(outputDir).map((f) => [f, readFileSync(join(outputDir, f))]));
  return { result, files, logs, progress, outputDir };
}

/** The error a prediction fails with, and the proof that it wrote nothing. */
async function failure(input: Record<string, unknown>, on: Predictor = predictor): Promise<Error> {
  const outputDir = join(tmp(), `out-${runs++}`);
  mkdirSync(outputDir);
  const error = await on.predict(input, { outputDir }).then(
    () => new Error('expected the prediction to fail'),
    (e: unknown) => e as Error,
  );
  expect(readdirSync(outputDir)).toEqual([]);
  return error;
}

const small = { aspect_ratio: 'custom', width: 256, height: 256, num_inference_steps: 4 };

async function pngDataUri(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Promise<string> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 3);
  const png = await sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

describe('predictor on the built-in model', () => {
  it('generates txt2img images at the requested size with the reference log lines and per-step progress', async () => {
    const { result, files, logs, progress } = await run({ prompt: 'a photo of TOK', seed: 5, ...small });
    expect(Object.keys(files)).toEqual(['out-0.webp']);
    expect(result.files).toEqual([join(result.files[0] as string, '..', 'out-0.webp')]);
    expect(await sharp(files['out-0.webp']).metadata()).toMatchObject({ format: 'webp', width: 256, height: 256 });
    expect(logs.slice(0, 3)).toEqual(['Using seed: 5', 'Prompt: a photo of TOK', '[!] txt2img mode']);
    expect(progress.map((p) => [p.output, p.step, p.total])).toEqual([
      [0, 1, 4],
      [0, 2, 4],
      [0, 3, 4],
      [0, 4, 4],
    ]);
    expect(result.seed).toBe(5);
    expect(result.metrics.predict_time).toBeGreaterThan(0);
  });

  it('is reproducible: the same seed gives byte-identical files, and output i equals a single run with seed+i', async () => {
    const three = await run({ prompt: 'a cat', seed: 7, num_outputs: 3, ...small });
    expect(Object.keys(three.files)).toEqual(['out-0.webp', 'out-1.webp', 'out-2.webp']);
    expect(three.progress.filter((p) => p.step === 4).map((p) => [p.output, p.outputs])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
    const again = await run({ prompt: 'a cat', seed: 7, ...small });
    const seed9 = await run({ prompt: 'a cat', seed: 9, ...small });
    expect(again.files['out-0.webp']?.equals(three.files['out-0.webp'] as Buffer)).toBe(true);
    expect(seed9.files['out-0.webp']?.equals(three.files['out-2.webp'] as Buffer)).toBe(true);
    expect(three.files['out-0.webp']?.equals(three.files['out-1.webp'] as Buffer)).toBe(false);
  });

  it('runs schnell with 4 steps by default and dev with 28; guidance changes dev only', async () => {
    const schnell = await run({ prompt: 'x', model: 'schnell', seed: 1, aspect_ratio: 'custom', width: 256, height: 256 });
    expect(schnell.progress.at(-1)?.total).toBe(4);
    const dev = await run({ prompt: 'x', seed: 1, aspect_ratio: 'custom', width: 256, height: 256 });
    expect(dev.progress.at(-1)?.total).toBe(28);
    const schnellOtherGuidance = await run({ prompt: 'x', model: 'schnell', seed: 1, guidance_scale: 9, aspect_ratio: 'custom', width: 256, height: 256 });
    expect(schnellOtherGuidance.files['out-0.webp']?.equals(schnell.files['out-0.webp'] as Buffer)).toBe(true);
    const devOtherGuidance = await run({ prompt: 'x', seed: 1, guidance_scale: 9, ...small });
    const devSmall = await run({ prompt: 'x', seed: 1, ...small });
    expect(devOtherGuidance.files['out-0.webp']?.equals(devSmall.files['out-0.webp'] as Buffer)).toBe(false);
  });

  it('writes webp, jpg and png with their quality rules and the preset sizes', async () => {
    const jpg = await run({ prompt: 'x', seed: 2, output_format: 'jpg', output_quality: 30, megapixels: '0.25', aspect_ratio: '16:9', num_inference_steps: 1 });
    expect(await sharp(jpg.files['out-0.jpg']).metadata()).toMatchObject({ format: 'jpeg', width: 672, height: 384 });
    const better = await run({
      prompt: 'x',
      seed: 2,
      output_format: 'jpg',
      output_quality: 95,
      megapixels: '0.25',
      aspect_ratio: '16:9',
      num_inference_steps: 1,
    });
    expect((better.files['out-0.jpg'] as Buffer).length).toBeGreaterThan((jpg.files['out-0.jpg'] as Buffer).length);
    const png = await run({ prompt: 'x', seed: 2, output_format: 'png', output_quality: 1, ...small });
    const png100 = await run({ prompt: 'x', seed: 2, output_format: 'png', output_quality: 100, ...small });
    expect(png.files['out-0.png']?.equals(png100.files['out-0.png'] as Buffer)).toBe(true);
    expect(await sharp(png.files['out-0.png']).metadata()).toMatchObject({ format: 'png', channels: 3, width: 256, height: 256 });
  });

  it('img2img takes its size from the image and runs the steps the strength leaves', async () => {
    const image = await pngDataUri(100, 60, (x, y) => [x * 2, y * 4, 128]);
    const { files, logs, progress } = await run({ prompt: 'x', seed: 3, image, prompt_strength: 0.5, num_inference_steps: 10, aspect_ratio: '21:9' });
    expect(await sharp(files['out-0.webp']).metadata()).toMatchObject({ width: 112, height: 64 });
    expect(logs).toEqual(expect.arrayContaining(['[!] img2img mode', 'Input image size: 100x60', '[!] Resizing input image from 100x60 to 112x64']));
    expect(progress.map((p) => p.total)).toEqual([5, 5, 5, 5, 5]);
  });

  it('inpainting: a white mask repaints everything (= img2img), a black mask keeps the image whatever the prompt', async () => {
    const image = await pngDataUri(64, 48, (x, y) => [x * 4, y * 5, 200]);
    const white = await pngDataUri(32, 32, () => [255, 255, 255]);
    const black = await pngDataUri(64, 48, () => [0, 0, 0]);
    const common = { seed: 4, image, prompt_strength: 0.8, num_inference_steps: 5, output_format: 'png' };
    const img2img = await run({ prompt: 'a', ...common });
    const repaint = await run({ prompt: 'a', mask: white, ...common });
    expect(repaint.logs).toContain('[!] inpaint mode');
    expect(repaint.files['out-0.png']?.equals(img2img.files['out-0.png'] as Buffer)).toBe(true);
    const keepA = await run({ prompt: 'a', mask: black, ...common });
    const keepB = await run({ prompt: 'the dog', mask: black, ...common, num_inference_steps: 9 });
    expect(keepA.files['out-0.png']?.equals(keepB.files['out-0.png'] as Buffer)).toBe(true);
    expect(keepA.files['out-0.png']?.equals(img2img.files['out-0.png'] as Buffer)).toBe(false);
  });

  it('go_fast runs 8-bit weights in every mode: custom sizes, img2img and inpainting', async () => {
    const image = await pngDataUri(64, 64, (x) => [x * 4, 0, 0]);
    const fast = await run({ prompt: 'x', seed: 6, go_fast: true, image, num_inference_steps: 3 });
    expect(fast.logs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^Loaded FLUX\.1-dev transformer \(int8 go_fast\) in /),
        expect.stringMatching(/^Loaded text encoders \(T5 8-bit mapped \+ CLIP\) in /),
      ]),
    );
    const exact = await run({ prompt: 'x', seed: 6, image, num_inference_steps: 3 });
    expect(fast.files['out-0.webp']?.equals(exact.files['out-0.webp'] as Buffer)).toBe(false);
    const inpaint = await run({
      prompt: 'x',
      seed: 6,
      go_fast: true,
      image,
      mask: await pngDataUri(8, 8, (x) => (x < 4 ? [255, 255, 255] : [0, 0, 0])),
      num_inference_steps: 3,
    });
    expect(inpaint.logs).toContain('[!] inpaint mode');
    expect(inpaint.files['out-0.webp']?.equals(fast.files['out-0.webp'] as Buffer)).toBe(false);
    const custom = await run({ prompt: 'x', seed: 6, go_fast: true, ...small });
    expect(await sharp(custom.files['out-0.webp']).metadata()).toMatchObject({ width: 256, height: 256 });
  });

  it('logs the seed it draws when none (or a negative one) is given', async () => {
    for (const seed of [undefined, -5]) {
      const { logs, result } = await run({ prompt: 'x', ...small, num_inference_steps: 1, ...(seed === undefined ? {} : { seed }) });
      expect(logs[0]).toBe(`Using seed: ${result.seed}`);
      expect(result.seed).toBeGreaterThanOrEqual(0);
      expect(result.seed).toBeLessThan(2 ** 32);
    }
    expect((await run({ prompt: 'x', seed: 2 ** 32 + 5, ...small, num_inference_steps: 1 })).logs[0]).toBe('Using seed: 5');
  });
});

describe('predictor errors', () => {
  it('rejects every schema violation on its own, naming the input, before writing anything', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ prompt: 5 }, 'prompt', /5 is not text/],
      [{}, 'prompt', /is required/],
      [{ prompt: 'x', aspect_ratio: '7:5' }, 'aspect_ratio', /must be one of "1:1"/],
      [{ prompt: 'x', num_outputs: 0 }, 'num_outputs', /0 is below the minimum 1/],
      [{ prompt: 'x', num_outputs: 5 }, 'num_outputs', /5 is above the maximum 4/],
      [{ prompt: 'x', num_inference_steps: 2.5 }, 'num_inference_steps', /2.5 is not a whole number/],
      [{ prompt: 'x', guidance_scale: 11 }, 'guidance_scale', /11 is above the maximum 10/],
      [{ prompt: 'x', output_quality: -1 }, 'output_quality', /-1 is below the minimum 0/],
      [{ prompt: 'x', go_fast: 'yes' }, 'go_fast', /"yes" is not true or false/],
      [{ prompt: 'x', aspect_ratio: 'custom', width: 512 }, 'height', /is required when aspect_ratio is "custom"/],
      [{ prompt: 'x', width: 100, aspect_ratio: 'custom', height: 512 }, 'width', /100 is below the minimum 256/],
      [{ prompt: 'x', mask: 'data:image/png;base64,AA==' }, 'mask', /needs an image/],
      [{ prompt: 'x', image: 'data:image/png;base64,AA==', prompt_strength: 0 }, 'prompt_strength', /must be greater than 0 with an image/],
      [{ prompt: 'x', steps: 4 }, 'steps', /is not an input of this model/],
      [{ prompt: 'x', lora_scale: 3.5 }, 'lora_scale', /3.5 is above the maximum 3/],
      [{ prompt: 'x', extra_lora_scale: -2 }, 'extra_lora_scale', /-2 is below the minimum -1/],
      [{ prompt: 'x', loras: [{ weights: '' }] }, 'loras[0].weights', /must not be empty/],
    ];
    for (const [input, name, message] of cases) {
      const error = await failure(input);
      expect(error, name).toBeInstanceOf(InputValidationError);
      expect((error as InputValidationError).problems, name).toEqual([{ input: name, message: expect.stringMatching(message) }]);
    }
  });

  it('names the image or mask that cannot be read', async () => {
    const bad = await failure({ prompt: 'x', image: 'data:image/png;base64,AAAA' });
    expect(bad).toBeInstanceOf(ImageInputError);
    expect(bad.message).toMatch(/^input "image": /);
    const image = await pngDataUri(32, 32, () => [1, 2, 3]);
    expect((await failure({ prompt: 'x', image, mask: 'data:image/gif;base64,R0lG' })).message).toMatch(/^input "mask": /);
    expect((await failure({ prompt: 'x', image: '/etc/hostname' })).message).toBe('input "image": only data URIs and http(s) URLs are accepted');
  });

  it('cancels between steps, writes nothing, and the next prediction runs normally', async () => {
    const controller = new AbortController();
    const outputDir = join(tmp(), `out-${runs++}`);
    const steps: number[] = [];
    const cancelled = predictor.predict(
      { prompt: 'x', seed: 1, ...small, num_inference_steps: 8 },
      { outputDir, signal: controller.signal, onProgress: (p) => (steps.push(p.step), p.step === 2 && controller.abort()) },
    );
    await expect(cancelled).rejects.toBeInstanceOf(RunCancelledError);
    expect(steps).toEqual([1, 2]);
    expect(readdirSync(tmp()).includes(`out-${runs - 1}`) ? readdirSync(outputDir) : []).toEqual([]);
    const after = await run({ prompt: 'x', seed: 1, ...small });
    expect(Object.keys(after.files)).toEqual(['out-0.webp']);
  });

  it('survives a kill of its engine mid-prediction: that prediction fails naming the step, the next one reloads and gives the same image', async () => {
    const input = { prompt: 'x', seed: 3, ...small, num_inference_steps: 8 };
    const before = await run(input);
    const outputDir = join(tmp(), `out-${runs++}`);
    const killed = predictor.predict(input, {
      outputDir,
      onProgress: (p) => p.step === 2 && process.kill(predictor.engine.pid as number, 'SIGKILL'),
    });
    await expect(killed).rejects.toThrow(new EngineStoppedError('SIGKILL', 'during step 3/8'));
    expect(existsSync(outputDir)).toBe(false);
    const after = await run(input);
    expect(after.logs.filter((l) => l.startsWith('Loaded '))).not.toEqual([]);
    expect(after.files).toEqual(before.files);
    expect(predictor.engine).toMatchObject({ state: 'running', restarts: 1, lastStop: 'SIGKILL' });
  });

  it('queues concurrent predictions and runs them one at a time', async () => {
    const order: string[] = [];
    const track = (name: string) => ({ onProgress: (p: Progress) => p.step === 1 && order.push(`${name} start`) });
    const a = run({ prompt: 'a', seed: 1, ...small }, track('a'));
    const b = run({ prompt: 'b', seed: 1, ...small }, track('b'));
    const [ra, rb] = await Promise.all([a, b]);
    expect(order).toEqual(['a start', 'b start']);
    expect(ra.progress.at(-1)?.step).toBe(4);
    expect(rb.progress.at(-1)?.step).toBe(4);
  });
});

describe('predictor with configured weights', () => {
  it('refuses to start without a safety pair, and with the checker disabled server-wide refuses requests that want it', async () => {
    const builtin = await ensureBuiltinModel(join(tmp(), 'cache'));
    const modelDir = join(builtin, 'FLUX.1-dev');
    await expect(Predictor.create({ modelDir, cacheDir: join(tmp(), 'cache') })).rejects.toThrow(`model folder ${modelDir}: no safety checker found`);
    const configured = await Predictor.create({ modelDir, cacheDir: join(tmp(), 'cache'), safety: 'disabled' });
    try {
      const error = await failure({ prompt: 'x' }, configured);
      expect((error as InputValidationError).problems).toEqual([
        { input: 'disable_safety_checker', message: expect.stringMatching(/the safety checker is disabled on this server/) },
      ]);
      const schnell = await failure({ prompt: 'x', model: 'schnell', disable_safety_checker: true }, configured);
      expect((schnell as InputValidationError).problems).toEqual([{ input: 'model', message: 'FLUX.1-schnell is not configured here (available: dev)' }]);
      const ok = await run({ prompt: 'x', seed: 8, disable_safety_checker: true, ...small }, {}, configured);
      const builtinRun = await run({ prompt: 'x', seed: 8, ...small });
      expect(ok.files['out-0.webp']?.equals(builtinRun.files['out-0.webp'] as Buffer)).toBe(true);
    } finally {
      await configured.close();
    }
  });

  it('on a memory budget too small for two components, loads and releases them in turn with the same result', async () => {
    const tight = await Predictor.create({ cacheDir: join(tmp(), 'cache'), memoryBudgetBytes: 1 });
    try {
      const image = await pngDataUri(64, 64, (x, y) => [x * 3, y * 3, 0]);
      const input = { prompt: 'budget', seed: 12, image, num_inference_steps: 4 };
      const constrained = await run(input, {}, tight);
      const lines = constrained.logs;
      const resident = await run(input);
      expect(constrained.files['out-0.webp']?.equals(resident.files['out-0.webp'] as Buffer)).toBe(true);
      expect(lines.filter((l) => l.startsWith('Releasing')).map((l) => l.replace(/ \(.*/, ''))).toEqual([
        'Releasing VAE',
        'Releasing text encoders',
        'Releasing FLUX.1-dev transformer',
      ]);
      expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^Warning: VAE needs about .* GiB, more than the 0\.0 GiB memory budget$/)]));
    } finally {
      await tight.close();
    }
  });
});

describe('residency between predictions', () => {
  /** Three go_fast predictions with different prompts on a predictor with this budget; the load and release lines of each. */
  async function consecutive(memoryBudgetBytes: number): Promise<string[][]> {
    const budgeted = await Predictor.create({ cacheDir: join(tmp(), 'cache'), memoryBudgetBytes });
    try {
      const lines: string[][] = [];
      for (const prompt of ['a red circle', 'a blue square', 'a green star']) {
        const { logs } = await run({ prompt, seed: 3, go_fast: true, ...small }, {}, budgeted);
        lines.push(logs.filter((l) => /^(Loaded|Releasing)/.test(l)).map((l) => l.replace(/ (in|\().*/, '')));
      }
      return lines;
    } finally {
      await budgeted.close();
    }
  }

  it('keeps T5, CLIP, the transformer and the VAE loaded when the plan says they fit: the second and third predictions load nothing', async () => {
    const plan = await predictor.memoryPlan('dev', true);
    expect(plan.components.map((c) => c.label)).toEqual(['text encoders (T5 8-bit mapped + CLIP)', 'FLUX.1-dev transformer (int8 go_fast)', 'VAE']);
    const total = plan.components.reduce((sum, c) => sum + c.bytes, 0);
    const loads = ['Loaded text encoders', 'Loaded FLUX.1-dev transformer', 'Loaded VAE'];
    expect(await consecutive(total)).toEqual([loads, [], []]);
    // One byte less and the plan no longer fits: every prediction loads and releases in turn.
    const tight = await consecutive(total - 1);
    expect(tight[0]).toEqual([...loads.slice(0, 2), 'Releasing text encoders', 'Loaded VAE']);
    for (const later of tight.slice(1)) expect(later.filter((l) => l.startsWith('Loaded'))).not.toEqual([]);
  });

  it('plans from checkpoint headers: go_fast T5 is mapped, so the text encoders hold less than exact ones', async () => {
    const [fast, exact] = [await predictor.memoryPlan('dev', true), await predictor.memoryPlan('dev', false)];
    expect(fast.fits && exact.fits).toBe(true);
    expect(fast.budgets.cpu).toBeGreaterThan(0);
    expect(fast.components[0]?.bytes).toBeLessThan(exact.components[0]?.bytes as number);
  });
});

/** The built-in tiny safety pair, with stage 1 flagging every image and/or the classifier's labels changed. */
async function safetyPair(name: string, options: { flagAll?: boolean; id2label?: Record<number, string> }): Promise<SafetyPaths> {
  const paths = await writeTinySafetyPair(join(tmp(), `safety-${name}`));
  if (options.flagAll) {
    // Concept thresholds below any cosine: stage 1 flags everything.
    const file = join(paths.checker, 'model.safetensors');
    const source = await SafetensorsFile.open(file);
    const tensors: TensorToWrite[] = [];
    for (const tensor of source.names()) {
      const info = source.info(tensor);
      const data = tensor === 'concept_embeds_weights' ? f32ToF16(new Float32Array(info.shape[0] as number).fill(-2)) : await source.readBytes(tensor);
      tensors.push({ name: tensor, dtype: info.dtype, shape: info.shape, data });
    }
    await writeSafetensors(file, tensors, source.metadata);
  }
  if (options.id2label !== undefined) {
    const config = join(paths.classifier, 'config.json');
    writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), id2label: options.id2label }));
  }
  return paths;
}

describe('safety checker in predictions', () => {
  const two = { prompt: 'x', seed: 21, num_outputs: 2, ...small };

  it("keeps images the checker passes (the built-in pair passes the built-in model's images) and logs the count", async () => {
    const { files, logs } = await run(two);
    expect(Object.keys(files)).toEqual(['out-0.webp', 'out-1.webp']);
    expect(logs).toContain('Total safe images: 2 out of 2');
    expect(logs.some((l) => l.startsWith('NSFW'))).toBe(false);
  });

  it('keeps images stage 1 flags when the classifier says "normal"; drops them when it says otherwise or fails', async () => {
    const cacheDir = join(tmp(), 'cache');
    const secondOpinion = await Predictor.create({ cacheDir, safety: await safetyPair('normal', { flagAll: true }) });
    const swapped = await Predictor.create({ cacheDir, safety: await safetyPair('swapped', { flagAll: true, id2label: { 0: 'nsfw', 1: 'normal' } }) });
    const failing = await Predictor.create({ cacheDir, safety: await safetyPair('failing', { flagAll: true, id2label: { 1: 'nsfw', 2: 'normal' } }) });
    try {
      const kept = await run(two, {}, secondOpinion);
      expect(Object.keys(kept.files)).toEqual(['out-0.webp', 'out-1.webp']);
      expect(kept.logs).toContain('Total safe images: 2 out of 2');

      const logs: string[] = [];
      const outputDir = join(tmp(), `out-${runs++}`);
      await expect(swapped.predict(two, { outputDir, log: (l) => logs.push(l) })).rejects.toThrow(new AllImagesUnsafeError());
      expect(logs.filter((l) => l.startsWith('NSFW'))).toEqual(['NSFW content detected in image 0', 'NSFW content detected in image 1']);
      expect(readdirSync(tmp()).includes(`out-${runs - 1}`) ? readdirSync(outputDir) : []).toEqual([]);

      const broken = await failing.predict(two, { outputDir: join(tmp(), `out-${runs++}`), log: (l) => logs.push(l) }).catch((e: unknown) => e as Error);
      expect(broken).toBeInstanceOf(AllImagesUnsafeError);
      expect(logs).toEqual(
        expect.arrayContaining([expect.stringMatching(/^Error running safety checker: .*the classifier predicted output 0, which "id2label" does not name/)]),
      );

      const unchecked = await run({ ...two, disable_safety_checker: true }, {}, swapped);
      expect(Object.keys(unchecked.files)).toEqual(['out-0.webp', 'out-1.webp']);
      expect(unchecked.logs.some((l) => l.startsWith('Total safe images'))).toBe(false);
    } finally {
      await Promise.all([secondOpinion.close(), swapped.close(), failing.close()]);
    }
  });

  it('drops only the flagged images, keeping the original indices (so names have gaps)', async () => {
    const solid = (rgb: [number, number, number]) => ({
      width: 64,
      height: 64,
      data: Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => rgb[i % 3] as number),
    });
    const logs: string[] = [];
    // Grey passes; magenta is flagged by stage 1 and confirmed by stage 2; red is flagged and then cleared.
    expect(await predictor.safeIndices([solid([128, 128, 128]), solid([255, 0, 255]), solid([255, 0, 0])], (l) => logs.push(l))).toEqual([0, 2]);
    expect(logs).toEqual(['NSFW content detected in image 1', 'Total safe images: 2 out of 3']);
  });
});
