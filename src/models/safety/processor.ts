/**
 * The transformers 4.43 "slow" image processors of the two safety stages (test/golden/data/safety/README.md
 * §5): CLIPImageProcessor (shortest-edge resize, centre crop) and ViTImageProcessor (resize to
 * height × width), then rescale and normalise in float32, HWC → CHW. Settings come from a
 * `preprocessor_config.json` in the format both processors save.
 */
import { readFileSync } from 'node:fs';
import type { RgbImage } from '../../images/decode.js';
import { float32Tensor, type TensorData } from '../../onnx/tensor-data.js';
import { resizeRgb, type Resample } from './resample.js';

export interface ProcessorConfig {
  resize: { shortestEdge: number } | { width: number; height: number } | null;
  resample: Resample;
  crop: { width: number; height: number } | null;
  rescale: number | null;
  normalize: { mean: [number, number, number]; std: [number, number, number] } | null;
}

export class ProcessorConfigError extends Error {
  constructor(source: string, detail: string) {
    super(`${source}: invalid image processor config: ${detail}`);
    this.name = 'ProcessorConfigError';
  }
}

export class SafetyInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyInputError';
  }
}

/** PIL resample codes the processors use: 2 = BILINEAR, 3 = BICUBIC. */
const RESAMPLE: Record<number, Resample> = { 2: 'bilinear', 3: 'bicubic' };

const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** CLIPImageProcessor's defaults, which are the settings cog-flux's feature extractor saves. */
export const CLIP_PROCESSOR_DEFAULTS: ProcessorConfig = {
  resize: { shortestEdge: 224 },
  resample: 'bicubic',
  crop: { width: 224, height: 224 },
  rescale: 1 / 255,
  normalize: { mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD },
};

/** ViTImageProcessor's defaults, which are the settings of Falconsai/nsfw_image_detection. */
export const VIT_PROCESSOR_DEFAULTS: ProcessorConfig = {
  resize: { width: 224, height: 224 },
  resample: 'bilinear',
  crop: null,
  rescale: 1 / 255,
  normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
};

function positive(source: string, key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw new ProcessorConfigError(source, `"${key}" must hold positive integers, got ${JSON.stringify(v)}`);
  return v;
}

/** `size` / `crop_size` as an int or {height, width}; an int `size` means the shortest edge for CLIP (default_to_square=False). */
function sizeOf(source: string, key: string, v: unknown, intIsShortestEdge: boolean): ProcessorConfig['resize'] {
  if (typeof v === 'number')
    return intIsShortestEdge ? { shortestEdge: positive(source, key, v) } : { width: positive(source, key, v), height: positive(source, key, v) };
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if ('shortest_edge' in o) return { shortestEdge: positive(source, key, o.shortest_edge) };
    if ('height' in o && 'width' in o) return { width: positive(source, key, o.width), height: positive(source, key, o.height) };
  }
  throw new ProcessorConfigError(source, `"${key}" must be an integer, {"shortest_edge"} or {"height", "width"}, got ${JSON.stringify(v)}`);
}

function triple(source: string, key: string, v: unknown, fallback: [number, number, number]): [number, number, number] {
  if (v === undefined) return fallback;
  if (typeof v === 'number') return [v, v, v];
  if (!Array.isArray(v) || v.length !== 3 || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
    throw new ProcessorConfigError(source, `"${key}" must be 3 numbers, got ${JSON.stringify(v)}`);
  }
  return v as [number, number, number];
}

/** Reads a saved processor config over the defaults of its processor (`do_*` flags switch steps off). */
export function parseProcessorConfig(source: string, raw: Record<string, unknown>, defaults: ProcessorConfig): ProcessorConfig {
  const intIsShortestEdge = defaults.crop !== null;
  const enabled = (flag: string, present: boolean) => (raw[flag] === undefined ? present : raw[flag] === true);
  const resampleCode = raw.resample ?? (defaults.resample === 'bicubic' ? 3 : 2);
  const resample = RESAMPLE[resampleCode as number];
  if (resample === undefined) throw new ProcessorConfigError(source, `"resample" ${JSON.stringify(resampleCode)} is not supported (2 = bilinear, 3 = bicubic)`);
  const crop = raw.crop_size === undefined ? defaults.crop : (sizeOf(source, 'crop_size', raw.crop_size, false) as { width: number; height: number });
  const rescale = raw.rescale_factor ?? defaults.rescale;
  if (typeof rescale !== 'number' || !(rescale > 0))
    throw new ProcessorConfigError(source, `"rescale_factor" must be a positive number, got ${JSON.stringify(rescale)}`);
  const std = triple(source, 'image_std', raw.image_std, defaults.normalize?.std ?? [1, 1, 1]);
  if (std.some((s) => s === 0)) throw new ProcessorConfigError(source, '"image_std" must not hold 0');
  return {
    resize: enabled('do_resize', defaults.resize !== null)
      ? raw.size === undefined
        ? defaults.resize
        : sizeOf(source, 'size', raw.size, intIsShortestEdge)
      : null,
    resample,
    crop: enabled('do_center_crop', defaults.crop !== null) ? crop : null,
    rescale: enabled('do_rescale', defaults.rescale !== null) ? rescale : null,
    normalize: enabled('do_normalize', defaults.normalize !== null)
      ? { mean: triple(source, 'image_mean', raw.image_mean, defaults.normalize?.mean ?? [0, 0, 0]), std }
      : null,
  };
}

/** The size every image comes out at (the crop, else a fixed resize), or null when it depends on the image. */
export function fixedOutputSize(config: ProcessorConfig): { width: number; height: number } | null {
  if (config.crop !== null) return config.crop;
  return config.resize !== null && !('shortestEdge' in config.resize) ? config.resize : null;
}

/** Shortest edge to S, the long edge to trunc(S·long/short) (transformers get_resize_output_image_size). */
function resizedSize(config: ProcessorConfig, width: number, height: number): { width: number; height: number } {
  const resize = config.resize;
  if (resize === null) return { width, height };
  if (!('shortestEdge' in resize)) return resize;
  const s = resize.shortestEdge;
  const long = Math.trunc((s * Math.max(width, height)) / Math.min(width, height));
  return width <= height ? { width: s, height: long } : { width: long, height: s };
}

/** Centre crop with top/left = ⌊(size − crop)/2⌋; a side shorter than the crop is zero-padded as transformers does. */
function centreCrop(image: RgbImage, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  const top = Math.floor((image.height - height) / 2);
  const left = Math.floor((image.width - width) / 2);
  for (let y = 0; y < height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= image.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= image.width) continue;
      out.set(image.data.subarray((sy * image.width + sx) * 3, (sy * image.width + sx) * 3 + 3), (y * width + x) * 3);
    }
  }
  return { width, height, data: out };
}

/** The uint8 image after resizing and cropping (the processor's last integer step). */
export function resizeAndCrop(config: ProcessorConfig, image: RgbImage): RgbImage {
  const size = resizedSize(config, image.width, image.height);
  const resized = config.resize === null ? image : resizeRgb(image, size.width, size.height, config.resample);
  return config.crop === null ? resized : centreCrop(resized, config.crop.width, config.crop.height);
}

/**
 * Rescale and normalise in float32 as numpy does it: x = f32(u8·factor) with the product in
 * float64, out = f32(f32(x − f32(mean)) / f32(std)); written CHW into `out` at `offset`.
 */
function normalizeInto(config: ProcessorConfig, image: RgbImage, out: Float32Array, offset: number): void {
  const plane = image.width * image.height;
  const mean = (config.normalize?.mean ?? [0, 0, 0]).map(Math.fround);
  const std = (config.normalize?.std ?? [1, 1, 1]).map(Math.fround);
  for (let c = 0; c < 3; c++) {
    const m = mean[c] as number;
    const s = std[c] as number;
    for (let i = 0; i < plane; i++) {
      const u = image.data[i * 3 + c] as number;
      const x = config.rescale === null ? u : Math.fround(u * config.rescale);
      out[offset + c * plane + i] = config.normalize === null ? x : Math.fround(Math.fround(x - m) / s);
    }
  }
}

function checkImage(image: RgbImage, index: number): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new SafetyInputError(`image ${index} has no pixels (${width}×${height})`);
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw new SafetyInputError(`image ${index}: a ${width}×${height} RGB image needs ${width * height * 3} bytes, got ${data?.length ?? 'none'}`);
  }
}

/** A model's processor: its settings, checked to produce the model's size × size input. */
export class ImageProcessor {
  private constructor(
    readonly config: ProcessorConfig,
    readonly size: number,
  ) {}

  /** From a preprocessor_config.json over `defaults`, or the defaults alone when the model's `folder` has none. */
  static load(file: string | null, defaults: ProcessorConfig, size: number, folder: string): ImageProcessor {
    const source = file ?? `${folder} (no preprocessor_config.json, so the processor's defaults)`;
    let raw: Record<string, unknown> = {};
    if (file !== null) {
      try {
        raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch (error) {
        throw new ProcessorConfigError(file, `cannot read it as JSON (${(error as Error).message})`);
      }
    }
    const config = parseProcessorConfig(source, raw, defaults);
    const out = fixedOutputSize(config);
    if (out === null || out.width !== size || out.height !== size) {
      throw new ProcessorConfigError(
        source,
        `the model takes ${size}×${size} pixels, but the processor makes ${out === null ? 'sizes that depend on the image' : `${out.width}×${out.height}`}`,
      );
    }
    return new ImageProcessor(config, size);
  }

  /** The images (all checked first; `index` names them in errors) as one float32 batch [N, 3, size, size]. */
  batch(images: readonly { image: RgbImage; index: number }[]): TensorData {
    for (const { image, index } of images) checkImage(image, index);
    const plane = 3 * this.size * this.size;
    const data = new Float32Array(images.length * plane);
    images.forEach(({ image }, n) => normalizeInto(this.config, resizeAndCrop(this.config, image), data, n * plane));
    return float32Tensor([images.length, 3, this.size, this.size], data);
  }

  /** A model input must be float32 [batch ≥ 1, 3, size, size]. */
  checkPixels(pixels: TensorData): void {
    const [batch, channels, h, w] = pixels.dims;
    if (pixels.type !== 'float32' || pixels.dims.length !== 4 || !((batch as number) >= 1) || channels !== 3 || h !== this.size || w !== this.size) {
      throw new SafetyInputError(`input "pixel_values" must be float32 [batch, 3, ${this.size}, ${this.size}], got ${pixels.type} [${pixels.dims.join(', ')}]`);
    }
  }
}
