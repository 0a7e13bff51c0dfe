import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeTinySafetyPair } from '../../../src/builtin/tiny-safety.js';
import { renderScene } from '../../../src/demo-world/render.js';
import { parseCaption, sceneFor } from '../../../src/demo-world/scene.js';
import type { RgbImage } from '../../../src/images/decode.js';
import { RunCancelledError } from '../../../src/onnx/errors.js';
import type { TensorData } from '../../../src/onnx/tensor-data.js';
import { SafetyChecker, type SafetyPaths } from '../../../src/pipeline/safety-checker.js';
import { conceptDecisions } from '../../../src/models/safety/concepts.js';
import { SafetyInputError } from '../../../src/models/safety/processor.js';
import { expectAllClose } from '../../helpers/golden.js';
import { seededRandom } from '../../../src/util/seeded-random.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { goldenCases, goldenSafetyFolders, rgbImage, tensor } from '../../helpers/golden-safety.js';

const worker = useWorker();
const tmp = useTempDir('safety-checker-');

function solid(width: number, height: number, rgb: [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rgb[i % 3] as number;
  return { width, height, data };
}

/** Noise around a colour, like the built-in model's greenish textures. */
function texture(width: number, height: number, rgb: [number, number, number], seed: number): RgbImage {
  const next = seededRandom(seed);
  const data = Uint8Array.from({ length: width * height * 3 }, (_, i) => Math.min(255, Math.max(0, (rgb[i % 3] as number) + (next() - 0.5) * 160)));
  return { width, height, data };
}

const RED: [number, number, number] = [255, 0, 0];
const MAGENTA: [number, number, number] = [255, 0, 255];

let tiny: Promise<SafetyPaths> | undefined;
const tinyPair = () => (tiny ??= writeTinySafetyPair(join(tmp(), 'tiny')));

describe('SafetyChecker on the golden pipeline case', () => {
  it('preprocesses, scores and labels the raw images as the reference and keeps images 0-2', async () => {
    const checker = await SafetyChecker.load(worker(), goldenSafetyFolders(join(tmp(), 'golden')));
    const cases = await goldenCases('pipeline.safetensors');
    const raw = tensor(cases, 'raw_images');
    const images = [0, 1, 2, 3].map((n) => rgbImage(raw, n));
    const items = images.map((image, index) => ({ image, index }));

    const clipPixels = checker.stage1.preprocess(items);
    expect(Array.from(clipPixels.data as Float32Array)).toEqual(Array.from(tensor(cases, 'clip_pixel_values').values));
    const embeds = (await checker.stage1.run(clipPixels)).image_embeds as TensorData;
    expectAllClose(embeds.data as Float32Array, tensor(cases, 'image_embeds').values, 1e-4, 0, 'image_embeds');
    const decisions = conceptDecisions(embeds, checker.stage1.concepts);
    expectAllClose(
      decisions.flatMap((d) => Array.from(d.conceptCos)),
      tensor(cases, 'concept_cos').values,
      2e-5,
      0,
      'concept_cos',
    );
    expectAllClose(
      decisions.flatMap((d) => Array.from(d.specialScores)),
      tensor(cases, 'special_scores').values,
      0.001 + 1e-9,
      0,
      'special_scores',
    );
    expectAllClose(
      decisions.flatMap((d) => Array.from(d.conceptScores)),
      tensor(cases, 'concept_scores').values,
      0.001 + 1e-9,
      0,
      'concept_scores',
    );

    const falconPixels = checker.stage2.preprocess(items);
    expect(Array.from(falconPixels.data as Float32Array)).toEqual(Array.from(tensor(cases, 'falcon_pixel_values').values));
    const logits = (await checker.stage2.run(falconPixels)).logits as TensorData;
    expectAllClose(logits.data as Float32Array, tensor(cases, 'falcon_logits').values, 1e-4, 0, 'falcon_logits');
    const labels = checker.stage2.argmax(logits).map((i) => checker.stage2.label(i));

    const verdicts = await checker.check(images);
    const hasNsfw = Array.from(tensor(cases, 'has_nsfw').values, Boolean);
    expect(verdicts).toEqual(
      hasNsfw.map((flagged, index) =>
        flagged
          ? { index, unsafe: labels[index] !== 'normal', stage1Flagged: true, stage2Label: labels[index] }
          : { index, unsafe: false, stage1Flagged: false },
      ),
    );
    expect(verdicts.filter((v) => !v.unsafe).map((v) => v.index)).toEqual([0, 1, 2]); // the file's kept_indices
    expect(verdicts.map((v) => Number(!v.unsafe))).toEqual(Array.from(tensor(cases, 'kept').values));

    const dropped = await checker.check([images[3] as RgbImage, images[3] as RgbImage]);
    expect(dropped.map((v) => v.unsafe)).toEqual([true, true]);
    await checker.release();
  });
});

describe('SafetyChecker on the built-in tiny pair', () => {
  it('flags none of a batch of ordinary images (stage 2 never runs)', async () => {
    const checker = await SafetyChecker.load(worker(), await tinyPair());
    const images = [
      texture(1024, 1024, [112, 165, 89], 1),
      texture(512, 768, [112, 165, 89], 2),
      solid(64, 64, [128, 128, 128]),
      solid(40, 30, [255, 255, 255]),
      solid(30, 40, [0, 0, 0]),
    ];
    expect(await checker.check(images)).toEqual(images.map((_, index) => ({ index, unsafe: false, stage1Flagged: false })));
    await checker.release();
  });

  it('flags some: red passes stage 2, magenta does not, the rest are not flagged', async () => {
    const checker = await SafetyChecker.load(worker(), await tinyPair());
    const images = [solid(48, 48, RED), texture(64, 64, [112, 165, 89], 3), solid(100, 60, MAGENTA), solid(32, 32, [0, 0, 255])];
    expect(await checker.check(images)).toEqual([
      { index: 0, unsafe: false, stage1Flagged: true, stage2Label: 'normal' },
      { index: 1, unsafe: false, stage1Flagged: false },
      { index: 2, unsafe: true, stage1Flagged: true, stage2Label: 'nsfw' },
      { index: 3, unsafe: false, stage1Flagged: false },
    ]);
    await checker.release();
  });

  it("drops the demo world's magenta backgrounds and passes its other scenes, red and orange objects included", async () => {
    const checker = await SafetyChecker.load(worker(), await tinyPair());
    const scene = (caption: string, width: number, height: number) => renderScene(sceneFor(parseCaption(caption)), width, height);
    const verdicts = await checker.check([
      scene('a large red circle in the centre on a white background', 512, 512),
      scene('a large orange square on the left and a large red ring on the right on a black background', 608, 416),
      scene('a small blue star at the top on a grey background', 320, 768),
      scene('a large green triangle on the right on a magenta background', 512, 512),
      scene('a large yellow circle on the left and a large pink square on the right on a magenta background', 1024, 1024),
    ]);
    expect(verdicts.map((v) => v.unsafe)).toEqual([false, false, false, true, true]);
    await checker.release();
  });

  it('flags all', async () => {
    const checker = await SafetyChecker.load(worker(), await tinyPair());
    const verdicts = await checker.check([solid(64, 64, MAGENTA), solid(1024, 1024, MAGENTA), solid(20, 90, MAGENTA)]);
    expect(verdicts.map((v) => [v.stage1Flagged, v.unsafe, v.stage2Label])).toEqual([
      [true, true, 'nsfw'],
      [true, true, 'nsfw'],
      [true, true, 'nsfw'],
    ]);
    await checker.release();
  });

  it("counts a stage-2 failure unsafe: a classifier config whose id2label leaves out the output it predicts (the reference's KeyError)", async () => {
    const paths = await writeTinySafetyPair(join(tmp(), 'broken-labels'));
    const configFile = join(paths.classifier, 'config.json');
    writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), id2label: { 0: 'normal', 2: 'nsfw' } }));
    const checker = await SafetyChecker.load(worker(), paths);
    expect(await checker.check([solid(32, 32, MAGENTA), solid(32, 32, RED)])).toEqual([
      {
        index: 0,
        unsafe: true,
        stage1Flagged: true,
        error: `${configFile}: the classifier predicted output 1, which "id2label" does not name (it maps 0 "normal", 2 "nsfw")`,
      },
      { index: 1, unsafe: false, stage1Flagged: true, stage2Label: 'normal' },
    ]);
    await checker.release();
  });

  it('names a bad image, answers an empty batch and stops when cancelled', async () => {
    const checker = await SafetyChecker.load(worker(), await tinyPair());
    await expect(checker.check([solid(8, 8, RED), { width: 8, height: 8, data: new Uint8Array(10) }])).rejects.toThrow(
      new SafetyInputError('image 1: a 8×8 RGB image needs 192 bytes, got 10'),
    );
    expect(await checker.check([])).toEqual([]);
    const abort = new AbortController();
    abort.abort();
    await expect(checker.check([solid(8, 8, RED)], abort.signal)).rejects.toThrow(RunCancelledError);
    await checker.release();
  });

  it('refuses missing weights, naming the path', async () => {
    const missing = join(tmp(), 'no-classifier');
    await expect(SafetyChecker.load(worker(), { ...(await tinyPair()), classifier: missing })).rejects.toThrow(
      `${missing}: no such file or folder (expected the ViT image classifier)`,
    );
  });
});
