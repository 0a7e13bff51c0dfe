/**
 * The pipeline's working grid: packed latents need sides that are multiples of twice the VAE
 * factor (32 px for the built-in model's 16× autoencoder; 16 for FLUX's 8×, where every size we
 * accept already fits). A request whose size does not fit is drawn on the smallest grid that
 * covers it — input images and masks extended by their edges — and cropped back (top-left).
 */
import { float32Tensor, type TensorData } from '../onnx/tensor-data.js';

export interface Grid {
  width: number;
  height: number;
}

export function workingGrid(width: number, height: number, cell: number): Grid {
  return { width: Math.ceil(width / cell) * cell, height: Math.ceil(height / cell) * cell };
}

/** [1, C, h, w] → [1, C, grid.height, grid.width], repeating the last column and row. */
export function extendImage(image: TensorData, grid: Grid): TensorData {
  const [, channels, h, w] = image.dims as [number, number, number, number];
  if (h === grid.height && w === grid.width) return image;
  const source = image.data as Float32Array;
  const out = new Float32Array(channels * grid.height * grid.width);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < grid.height; y++) {
      const row = (c * h + Math.min(y, h - 1)) * w;
      for (let x = 0; x < grid.width; x++) out[(c * grid.height + y) * grid.width + x] = source[row + Math.min(x, w - 1)] as number;
    }
  }
  return float32Tensor([1, channels, grid.height, grid.width], out);
}

/** A row-major h × w mask (1 = repaint) on the grid, repeating its last column and row as the image does. */
export function extendMask(mask: Uint8Array, width: number, height: number, grid: Grid): Uint8Array {
  if (width === grid.width && height === grid.height) return mask;
  const out = new Uint8Array(grid.width * grid.height);
  for (let y = 0; y < grid.height; y++) {
    const row = Math.min(y, height - 1) * width;
    for (let x = 0; x < grid.width; x++) out[y * grid.width + x] = mask[row + Math.min(x, width - 1)] as number;
  }
  return out;
}

/** The top-left width × height of a [1, C, H, W] image. */
export function cropImage(image: TensorData, width: number, height: number): TensorData {
  const [, channels, h, w] = image.dims as [number, number, number, number];
  if (h === height && w === width) return image;
  const source = image.data as Float32Array;
  const out = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) out.set(source.subarray((c * h + y) * w, (c * h + y) * w + width), (c * height + y) * width);
  }
  return float32Tensor([1, channels, height, width], out);
}
