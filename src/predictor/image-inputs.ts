/**
 * The image and mask inputs of img2img and inpainting, read and prepared at the generation
 * size (docs/reference-behaviour.md §4.2, §4.7): the image is Lanczos-stretched to its size
 * capped at 1440 and rounded up to 16; the mask is stretched to the same size (nearest) and
 * binarized (white = repaint).
 */
import { decodeImage } from '../images/decode.js';
import { sizeForInputImage } from '../images/sizing.js';
import { readImageSource, type ImageSourceOptions } from '../images/source.js';
import { imageToTensor, maskToBinary, resizeLanczos } from '../images/tensors.js';
import type { TensorData } from '../onnx/tensor-data.js';

export interface PreparedImage {
  width: number;
  height: number;
  /** [1, 3, height, width] in [-1, 1]. */
  tensor: TensorData;
  /** Row-major [height, width], 1 = repaint; inpainting only. */
  mask?: Uint8Array;
}

export async function prepareImageInputs(
  image: string,
  mask: string | undefined,
  source: ImageSourceOptions & { maxPixels: number },
  log: (line: string) => void,
): Promise<PreparedImage> {
  const decoded = await decodeImage('image', await readImageSource('image', image, source), source.maxPixels);
  // The mask is read before any work on the image so a bad mask fails as early as a bad image.
  const maskImage = mask === undefined ? undefined : await decodeImage('mask', await readImageSource('mask', mask, source), source.maxPixels);
  log(`Input image size: ${decoded.width}x${decoded.height}`);
  const { width, height } = sizeForInputImage(decoded.width, decoded.height);
  if (width !== decoded.width || height !== decoded.height) log(`[!] Resizing input image from ${decoded.width}x${decoded.height} to ${width}x${height}`);
  if (maskImage !== undefined && (maskImage.width !== decoded.width || maskImage.height !== decoded.height)) {
    log(`[!] The mask is ${maskImage.width}x${maskImage.height}, the image ${decoded.width}x${decoded.height}: resizing the mask to the image`);
  }
  const resized = await resizeLanczos(decoded, width, height);
  return {
    width,
    height,
    tensor: imageToTensor(resized),
    ...(maskImage === undefined ? {} : { mask: maskToBinary(maskImage, width, height) }),
  };
}
