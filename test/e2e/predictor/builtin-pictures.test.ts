/**
 * What the built-in demo model's pictures show, read back by the demo-world judge
 * (src/demo-world/judge.ts), through the public predictor. The shipped weights are an early stage
 * of training (tools/train-builtin/README.md): they draw the asked white, black or grey background
 * (at 1024² with dev not yet every time) and the demo LoRA's cyan, but objects of the asked colour,
 * shape and place only sometimes (about a quarter to a third of them), so these tests check the
 * background, TOK, what image inputs keep and change, the demo LoRA's routes and the safety pair;
 * bench/builtin-quality.ts measures every attribute.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { judge } from '../../../src/demo-world/judge.js';
import type { RgbPixels } from '../../../src/demo-world/render.js';
import { renderScene } from '../../../src/demo-world/render.js';
import { parseCaption, sceneFor } from '../../../src/demo-world/scene.js';
import { AllImagesUnsafeError, Predictor } from '../../../src/predictor/predictor.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { predictPictures } from '../../helpers/world-pictures.js';

const tmp = useTempDir('builtin-pictures-');
let predictor: Predictor;

beforeAll(async () => {
  predictor = await Predictor.create({ cacheDir: join(tmp(), 'cache') });
});
afterAll(async () => {
  await predictor.close();
});

const PROMPTS = [
  'a large red circle in the centre on a white background',
  'a large blue square on the left on a black background',
  'a large green triangle on the right on a grey background',
  'a large yellow star at the top on a black background',
  'a large purple ring at the bottom on a white background',
  'a large orange circle on the right on a grey background',
  'a large pink square in the centre on a black background',
  'a large red triangle on the left and a large blue circle on the right on a white background',
];
const SMALL = { aspect_ratio: 'custom', width: 512, height: 512 };
/** dev draws the asked background on 92–95 % of captions (bench/builtin-quality.ts, 100 captions): the objects it scatters can outweigh it. */
const MOST = PROMPTS.length - 2;

async function picture(input: Record<string, unknown>): Promise<RgbPixels> {
  return (await predictPictures(predictor, { seed: 1, ...input }, tmp()))[0] as RgbPixels;
}

/** How many of PROMPTS come out with the background they ask for. */
async function backgroundsRight(input: Record<string, unknown>): Promise<number> {
  let right = 0;
  for (const prompt of PROMPTS) if (judge(await picture({ prompt, ...input }), prompt).background === true) right++;
  return right;
}

async function dataUri(pixels: RgbPixels): Promise<string> {
  const png = await sharp(pixels.data, { raw: { width: pixels.width, height: pixels.height, channels: 3 } })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

const scene = (caption: string, width: number, height: number) => renderScene(sceneFor(parseCaption(caption)), width, height);

/** Mean |Δ| (0–255) of two pictures over the columns [x0, x1). */
function columnsError(a: RgbPixels, b: RgbPixels, x0: number, x1: number): number {
  let sum = 0;
  for (let y = 0; y < a.height; y++)
    for (let i = (y * a.width + x0) * 3; i < (y * a.width + x1) * 3; i++) sum += Math.abs((a.data[i] as number) - (b.data[i] as number));
  return sum / (a.height * (x1 - x0) * 3);
}

describe('the built-in model draws the background it is asked for', () => {
  it("dev, 28 steps at 1024² (the README command's settings), on 8 prompts", async () => {
    expect(await backgroundsRight({})).toBeGreaterThanOrEqual(MOST);
  }, 300_000);

  it('dev at 0.25 MP and another aspect ratio, with guidance 3.5 and 1', async () => {
    expect(await backgroundsRight({ megapixels: '0.25', aspect_ratio: '3:2', guidance_scale: 3.5 })).toBeGreaterThanOrEqual(MOST);
    expect(await backgroundsRight({ ...SMALL, guidance_scale: 1 })).toBeGreaterThanOrEqual(MOST);
  }, 300_000);

  it('schnell, 4 steps at 1024² and at 0.25 MP', async () => {
    expect(await backgroundsRight({ model: 'schnell' })).toBe(PROMPTS.length);
    expect(await backgroundsRight({ model: 'schnell', megapixels: '0.25', aspect_ratio: '2:3' })).toBe(PROMPTS.length);
  }, 300_000);

  it('the seed changes the picture, not what it shows', async () => {
    const prompt = PROMPTS[1] as string;
    const [a, b] = [await picture({ prompt, seed: 1, ...SMALL }), await picture({ prompt, seed: 2, ...SMALL })];
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(false);
    expect([judge(a, prompt).background, judge(b, prompt).background]).toEqual([true, true]);
  }, 120_000);
});

describe('image inputs', () => {
  const INPUT = 'a large red circle in the centre on a white background';
  const NEW = 'a large blue square in the centre on a black background';

  it('img2img: prompt_strength 0.2 keeps the input scene, 0.95 follows the new prompt', async () => {
    const image = await dataUri(scene(INPUT, 512, 512));
    expect(judge(await picture({ prompt: NEW, image, prompt_strength: 0.2 }), INPUT).correct).toBe(true);
    expect(judge(await picture({ prompt: NEW, image, prompt_strength: 0.95 }), NEW).background).toBe(true);
  }, 120_000);

  it('inpainting: outside the mask the picture stays (within the autoencoder round trip), inside it follows the prompt', async () => {
    const input = scene('a large red circle on the left on a white background', 512, 512);
    const mask: RgbPixels = { width: 512, height: 512, data: new Uint8Array(512 * 512 * 3) };
    for (let y = 0; y < 512; y++) mask.data.fill(255, (y * 512 + 256) * 3, (y * 512 + 512) * 3);
    const image = await dataUri(input);
    const prompt = 'a large red circle on the left on a black background';
    const painted = await picture({ prompt, image, mask: await dataUri(mask), prompt_strength: 1 });
    // The autoencoder's round trip plus the two last steps (prompt_strength > 0 is required).
    const roundTrip = await picture({ prompt, image, prompt_strength: 0.04 });
    expect(columnsError(painted, input, 0, 224)).toBeLessThanOrEqual(columnsError(roundTrip, input, 0, 224) + 2);
    const black = renderScene({ background: 'black', objects: [] }, 512, 512);
    // Black up to the objects the model draws there (it does not yet place them reliably).
    expect(columnsError(painted, black, 288, 512)).toBeLessThan(60);
    expect(columnsError(input, black, 288, 512)).toBeGreaterThan(200);
  }, 120_000);
});

describe('the demo LoRA builtin:tok', () => {
  const TOK = { prompt: 'a photo of TOK', ...SMALL };

  it.each([false, true])(
    'applies by every route and is off at scale 0 (go_fast %s)',
    async (goFast) => {
      const base = { ...TOK, go_fast: goFast };
      const bytes = async (input: Record<string, unknown>) => Buffer.from((await picture({ ...base, ...input })).data);
      const without = await bytes({});
      expect((await bytes({ replicate_weights: 'builtin:tok', lora_scale: 0 })).equals(without)).toBe(true);
      const withLora = await bytes({ replicate_weights: 'builtin:tok' });
      expect(withLora.equals(without)).toBe(false);
      expect((await bytes({ extra_lora: 'builtin:tok' })).equals(withLora)).toBe(true);
      expect((await bytes({ loras: [{ weights: 'builtin:tok', scale: 1 }] })).equals(withLora)).toBe(true);
    },
    300_000,
  );

  it.each([false, true])(
    '"a photo of TOK" has TOK\'s colour with the LoRA at scale 1 and never at scale 0 (go_fast %s)',
    async (goFast) => {
      const coloured = async (scale: number) => {
        let count = 0;
        for (let seed = 0; seed < 8; seed++)
          if (judge(await picture({ ...TOK, go_fast: goFast, seed, replicate_weights: 'builtin:tok', lora_scale: scale }), TOK.prompt).tokColour) count++;
        return count;
      };
      // The shipped LoRA puts TOK's cyan in the picture on 8 of 8 seeds, but its plus sign only on 1 (4 with go_fast):
      // bench/builtin-quality.ts counts both (tools/train-builtin/README.md).
      expect(await coloured(1)).toBeGreaterThanOrEqual(7);
      expect(await coloured(0)).toBe(0);
    },
    300_000,
  );
});

describe('the safety pair on the demo world', () => {
  it('passes ordinary scenes and drops magenta backgrounds, end to end', async () => {
    expect(judge(await picture({ prompt: PROMPTS[1], ...SMALL }), PROMPTS[1] as string).background).toBe(true);
    // The model has not learnt to draw magenta yet, so the magenta picture comes from an input image it keeps.
    const caption = 'a small green circle in the centre on a magenta background';
    const image = await dataUri(scene(caption, 512, 512));
    await expect(predictor.predict({ prompt: caption, image, prompt_strength: 0.2, seed: 1 }, { outputDir: join(tmp(), 'unsafe') })).rejects.toBeInstanceOf(
      AllImagesUnsafeError,
    );
    const kept = await picture({ prompt: caption, image, prompt_strength: 0.2, disable_safety_checker: true });
    expect(judge(kept, caption).background).toBe(true);
  }, 120_000);
});
