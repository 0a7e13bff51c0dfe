/** Predictions of the built-in demo model read back as pictures for the demo-world judge (tests and bench/builtin-quality.ts). */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { RgbPixels } from '../../src/demo-world/render.js';
import type { Predictor } from '../../src/predictor/predictor.js';

/** The RGB pixels of an image file. */
export async function pixelsOf(file: Buffer | string): Promise<RgbPixels> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Runs one prediction (png outputs, lossless) in a scratch folder under `tempRoot` and returns its pictures in output order. */
export async function predictPictures(predictor: Predictor, input: Record<string, unknown>, tempRoot: string): Promise<RgbPixels[]> {
  const outputDir = await mkdtemp(join(tempRoot, 'pictures-'));
  try {
    const result = await predictor.predict({ output_format: 'png', ...input }, { outputDir });
    return await Promise.all(result.files.map(async (f) => pixelsOf(await readFile(f))));
  } finally {
    await rm(outputDir, { recursive: true, force: true });
  }
}
