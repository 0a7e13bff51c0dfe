/** Conversions between images, masks and model tensors, and the resizes the pipelines use. */
import sharp from 'sharp';
import { float32Tensor, type TensorData } from '../onnx/tensor-data.js';
import type { RgbImage } from './decode.js';

/** Lanczos resize to exactly width × height (stretching, no crop or padding), like PIL LANCZOS. */
export async function resizeLanczos(image: RgbImage, width: number, height: number): Promise<RgbImage> {
  if (image.width === width && image.height === height) return image;
  const data = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** RGB u8 → [1, 3, H, W] float32 in [-1, 1] (v/127.5 − 1). */
export function imageToTensor(image: RgbImage): TensorData {
  const plane = image.width * image.height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) out[c * plane + p] = (image.data[p * 3 + c] as number) / 127.5 - 1;
  }
  return float32Tensor([1, 3, image.height, image.width], out);
}

/** One image [3, H, W] of a decoded batch (values ≈ [-1, 1]) → RGB u8: round(255·clamp(x/2 + 0.5, 0, 1)). */
export function tensorToImage(tensor: TensorData, index: number): RgbImage {
  const [, channels, height, width] = tensor.dims as [number, number, number, number];
  if (channels !== 3) throw new RangeError(`expected 3 channels, got ${channels}`);
  const plane = width * height;
  const data = new Uint8Array(3 * plane);
  const src = tensor.data as Float32Array;
  const base = index * 3 * plane;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = (src[base + c * plane + p] as number) / 2 + 0.5;
      data[p * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, v)));
    }
  }
  return { width, height, data };
}

/**
 * A mask at the generation size: nearest-neighbour resize (source pixel ⌊(x + ½)·W/w⌋, as
 * PIL NEAREST), ITU-R 601-2 luma in integer arithmetic (PIL "L"), threshold 128.
 * Returns 1 = repaint (white), 0 = keep, row-major [height, width].
 */
export function maskToBinary(mask: RgbImage, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(mask.height - 1, Math.floor(((y + 0.5) * mask.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(mask.width - 1, Math.floor(((x + 0.5) * mask.width) / width));
      const i = (sy * mask.width + sx) * 3;
      const luma = ((mask.data[i] as number) * 19595 + (mask.data[i + 1] as number) * 38470 + (mask.data[i + 2] as number) * 7471 + 0x8000) >> 16;
      out[y * width + x] = luma >= 128 ? 1 : 0;
    }
  }
  return out;
}
