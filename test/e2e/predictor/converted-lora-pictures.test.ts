/**
 * The demo LoRA converted to kohya (flux-lora convert-lora) draws the same picture as `builtin:tok`
 * through the public predictor, given as a local file; and converted back to PEFT, too.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_ASSETS } from '../../../src/builtin/tiny-model.js';
import { modelTargets } from '../../../src/cli/convert-command.js';
import { convertLoraFile } from '../../../src/lora/convert.js';
import type { RgbPixels } from '../../../src/demo-world/render.js';
import { Predictor } from '../../../src/predictor/predictor.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { predictPictures } from '../../helpers/world-pictures.js';

const tmp = useTempDir('converted-lora-');
let predictor: Predictor;
let kohya: string;
let peft: string;

beforeAll(async () => {
  const loras = join(tmp(), 'loras');
  mkdirSync(loras);
  const targets = await modelTargets(BUILTIN_ASSETS);
  kohya = join(loras, 'tok-kohya.safetensors');
  peft = join(loras, 'tok-peft.safetensors');
  await convertLoraFile(join(BUILTIN_ASSETS, 'loras', 'tok.safetensors'), kohya, 'kohya', targets);
  await convertLoraFile(kohya, peft, 'peft', targets);
  predictor = await Predictor.create({ cacheDir: join(tmp(), 'cache'), loraCache: { localRoot: loras } });
});
afterAll(async () => {
  await predictor.close();
});

const TOK = { prompt: 'a photo of TOK', seed: 4, aspect_ratio: 'custom', width: 256, height: 256, num_inference_steps: 12 };

async function picture(input: Record<string, unknown>): Promise<RgbPixels> {
  return (await predictPictures(predictor, { ...TOK, ...input }, tmp()))[0] as RgbPixels;
}

/** The largest difference of one colour channel between two pictures of the same size, in levels. */
function maxDifference(a: RgbPixels, b: RgbPixels): number {
  expect([b.width, b.height]).toEqual([a.width, a.height]);
  return a.data.reduce((max, v, i) => Math.max(max, Math.abs(v - (b.data[i] as number))), 0);
}

describe('the demo LoRA converted to kohya', () => {
  it.each([{}, { lora_scale: 0.6, go_fast: true }])(
    'draws the picture of builtin:tok from a local file, and so does its conversion back to PEFT (%o)',
    async (settings) => {
      const builtin = await picture({ replicate_weights: 'builtin:tok', ...settings });
      expect(maxDifference(builtin, await picture(settings))).toBeGreaterThan(32);
      for (const file of [kohya, peft]) {
        // Observed: 0 levels (the fused module's extra rank columns only add exact zeros).
        expect(maxDifference(builtin, await picture({ replicate_weights: file, ...settings }))).toBeLessThanOrEqual(1);
      }
    },
    300_000,
  );
});
