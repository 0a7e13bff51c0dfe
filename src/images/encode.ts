/** Output encoding (docs/reference-behaviour.md §4.11): webp lossy, jpg optimized, png; names out-<i>.<ext>. */
import sharp from 'sharp';
import type { RgbImage } from './decode.js';

export const OUTPUT_FORMATS = ['webp', 'jpg', 'png'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** sharp's webp and jpeg quality floor is 1; PIL accepts 0 for both and gives an equally degraded image (docs/decisions.md). */
function sharpQuality(quality: number): number {
  return Math.max(1, quality);
}

export async function encodeImage(image: RgbImage, format: OutputFormat, quality: number): Promise<Buffer> {
  if (!Number.isInteger(quality) || quality < 0 || quality > 100) throw new RangeError(`output_quality must be an integer in 0..100, got ${quality}`);
  const pipeline = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
  switch (format) {
    case 'webp':
      return pipeline.webp({ quality: sharpQuality(quality), lossless: false }).toBuffer();
    case 'jpg':
      return pipeline.jpeg({ quality: sharpQuality(quality), optimiseCoding: true, chromaSubsampling: '4:2:0' }).toBuffer();
    case 'png':
      return pipeline.png({ compressionLevel: 6 }).toBuffer();
  }
}

/** File name of output `index` (its original batch index, so dropped images leave gaps). */
export function outputName(index: number, format: OutputFormat): string {
  return `out-${index}.${format}`;
}
