/**
 * A contact sheet of the built-in model's pictures, for a look while training: each prompt drawn by
 * dev (28 steps) and schnell (4 steps) at one size, with the judge's verdict per picture.
 * Run: npx tsx tools/train-builtin/sample.ts --out sheet.png [--size 512] [--cache DIR] [prompts…]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp, { type OverlayOptions } from 'sharp';
import { judge } from '../../src/demo-world/judge.js';
import { Predictor } from '../../src/predictor/predictor.js';
import { predictPictures } from '../../test/helpers/world-pictures.js';

const { values, positionals } = parseArgs({
  options: { out: { type: 'string', default: 'sheet.png' }, size: { type: 'string', default: '512' }, cache: { type: 'string' }, lora: { type: 'string' } },
  allowPositionals: true,
});
const size = Number(values.size);
const prompts =
  positionals.length > 0 ? positionals : ['a large red circle in the centre on a white background', 'a large blue square on the left on a black background'];
const scratch = mkdtempSync(join(tmpdir(), 'flux-lora-sample-'));
const predictor = await Predictor.create({ cacheDir: values.cache ?? join(scratch, 'cache') });
const tiles: OverlayOptions[] = [];
for (const [row, prompt] of prompts.entries()) {
  for (const [column, input] of [{}, { model: 'schnell' }, { guidance_scale: 1 }].entries()) {
    const lora = values.lora === undefined ? {} : { replicate_weights: values.lora };
    const [picture] = await predictPictures(predictor, { prompt, seed: row, aspect_ratio: 'custom', width: size, height: size, ...lora, ...input }, scratch);
    if (picture === undefined) continue;
    const verdict = judge(picture, prompt);
    console.log(`${prompt} | ${JSON.stringify(input)} | ${verdict.correct ? 'right' : 'wrong'} | seen ${JSON.stringify(verdict.seen)}`);
    const png = await sharp(picture.data, { raw: { width: picture.width, height: picture.height, channels: 3 } })
      .png()
      .toBuffer();
    tiles.push({ input: png, left: column * size, top: row * size });
  }
}
await predictor.close();
await sharp({ create: { width: 3 * size, height: prompts.length * size, channels: 3, background: '#808080' } })
  .composite(tiles)
  .png()
  .toFile(values.out);
