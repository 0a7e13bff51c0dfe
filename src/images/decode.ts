/**
 * Decodes input images with sharp: png, jpeg, webp and gif (first frame) only; the pixel
 * count is checked from the header before any decoding (decompression bombs); EXIF
 * orientation is applied and alpha is flattened onto white (docs/decisions.md).
 */
import sharp from 'sharp';
import { ImageInputError } from './errors.js';

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved 8-bit RGB, row-major. */
  data: Uint8Array;
}

export const DEFAULT_MAX_PIXELS = 64 * 1024 * 1024;
const FORMATS = new Set(['png', 'jpeg', 'webp', 'gif']);

export async function decodeImage(input: string, bytes: Uint8Array, maxPixels = DEFAULT_MAX_PIXELS): Promise<RgbImage> {
  if (bytes.byteLength === 0) throw new ImageInputError(input, 'the image is empty (0 bytes)');
  let format: string | undefined;
  let width = 0;
  let height = 0;
  try {
    ({ format, width = 0, height = 0 } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch {
    throw new ImageInputError(input, 'not a readable image (expected png, jpeg, webp or gif)');
  }
  if (format === undefined || !FORMATS.has(format))
    throw new ImageInputError(input, `unsupported image format "${format ?? 'unknown'}" (expected png, jpeg, webp or gif)`);
  if (width < 1 || height < 1) throw new ImageInputError(input, `the image has no pixels (${width}×${height})`);
  if (width * height > maxPixels)
    throw new ImageInputError(input, `the image is ${width}×${height} = ${width * height} pixels, more than the ${maxPixels}-pixel limit`);
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' })
      .rotate()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (error) {
    throw new ImageInputError(input, `cannot decode the ${format} image: ${(error as Error).message}`);
  }
}
