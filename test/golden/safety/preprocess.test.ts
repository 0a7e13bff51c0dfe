import { describe, expect, it } from 'vitest';
import {
  CLIP_PROCESSOR_DEFAULTS,
  fixedOutputSize,
  ImageProcessor,
  parseProcessorConfig,
  ProcessorConfigError,
  resizeAndCrop,
  SafetyInputError,
  VIT_PROCESSOR_DEFAULTS,
} from '../../../src/models/safety/processor.js';
import { resizeRgb } from '../../../src/models/safety/resample.js';
import { goldenCases, rgbImage, safetyGolden, tensor } from '../../helpers/golden-safety.js';

const clip = () => ImageProcessor.load(safetyGolden('clip_preprocessor_config.json'), CLIP_PROCESSOR_DEFAULTS, 32, 'tiny');
const vit = () => ImageProcessor.load(safetyGolden('falcon_preprocessor_config.json'), VIT_PROCESSOR_DEFAULTS, 32, 'tiny');

/** Float outputs are bit-exact when the float32 steps of test/golden/data/safety/README.md §5 are followed. */
function expectExact(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  expect(actual.length, label).toBe(expected.length);
  let mismatches = 0;
  for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) mismatches++;
  expect(mismatches, `${label}: elements that differ`).toBe(0);
}

describe('safety preprocessing (PIL resampling, CLIP and ViT processors)', () => {
  it('reproduces the tiny processors exactly: uint8 resize and crop, float32 pixel values (upscale, odd crop, antialiased downscale)', async () => {
    const cases = await goldenCases('preprocess.safetensors');
    for (const n of [0, 1, 2]) {
      const raw = rgbImage(tensor(cases, `raw_${n}`));
      const resized = tensor(cases, `clip_resized_u8_${n}`);
      const [h, w] = resized.shape as [number, number];
      expectExact(resizeRgb(raw, w, h, 'bicubic').data, resized.values, `clip_resized_u8_${n}`);
      expectExact(resizeAndCrop(clip().config, raw).data, tensor(cases, `clip_cropped_u8_${n}`).values, `clip_cropped_u8_${n}`);
      expectExact(clip().batch([{ image: raw, index: 0 }]).data as Float32Array, tensor(cases, `clip_pixel_values_${n}`).values, `clip_pixel_values_${n}`);
      expectExact(resizeAndCrop(vit().config, raw).data, tensor(cases, `vit_resized_u8_${n}`).values, `vit_resized_u8_${n}`);
      expectExact(vit().batch([{ image: raw, index: 0 }]).data as Float32Array, tensor(cases, `vit_pixel_values_${n}`).values, `vit_pixel_values_${n}`);
    }
  });

  it('reproduces the real processors (224, no config file: the defaults) on a 256×240 image', async () => {
    const cases = await goldenCases('preprocess_224.safetensors');
    const raw = rgbImage(tensor(cases, 'raw'));
    expectExact(
      ImageProcessor.load(null, CLIP_PROCESSOR_DEFAULTS, 224, 'real').batch([{ image: raw, index: 0 }]).data as Float32Array,
      tensor(cases, 'clip_pixel_values').values,
      'clip_pixel_values',
    );
    expectExact(
      ImageProcessor.load(null, VIT_PROCESSOR_DEFAULTS, 224, 'real').batch([{ image: raw, index: 0 }]).data as Float32Array,
      tensor(cases, 'vit_pixel_values').values,
      'vit_pixel_values',
    );
  });

  it('resizes real FLUX sizes to the README table', () => {
    const processor = ImageProcessor.load(null, CLIP_PROCESSOR_DEFAULTS, 224, 'real');
    const sizes: [number, number, number, number][] = [
      [1536, 640, 537, 224],
      [768, 1344, 224, 392],
      [1216, 832, 327, 224],
      [1024, 1024, 224, 224],
    ];
    for (const [w, h, rw, rh] of sizes) {
      const image = { width: w, height: h, data: new Uint8Array(w * h * 3).fill(128) };
      expect(resizeAndCrop({ ...processor.config, crop: null }, image)).toMatchObject({ width: rw, height: rh });
      expect(resizeAndCrop(processor.config, image)).toMatchObject({ width: 224, height: 224 });
    }
  });

  it('names the bad image and the bad config', () => {
    const processor = clip();
    const good = { width: 2, height: 2, data: new Uint8Array(12) };
    expect(() =>
      processor.batch([
        { image: good, index: 0 },
        { image: { width: 2, height: 2, data: new Uint8Array(11) }, index: 1 },
      ]),
    ).toThrow(new SafetyInputError('image 1: a 2×2 RGB image needs 12 bytes, got 11'));
    expect(() => processor.batch([{ image: { width: 0, height: 5, data: new Uint8Array(0) }, index: 3 }])).toThrow('image 3 has no pixels (0×5)');
    expect(() => ImageProcessor.load(null, CLIP_PROCESSOR_DEFAULTS, 32, '/m')).toThrow(
      new ProcessorConfigError(
        "/m (no preprocessor_config.json, so the processor's defaults)",
        'the model takes 32×32 pixels, but the processor makes 224×224',
      ),
    );
    expect(() => ImageProcessor.load(safetyGolden('clip_preprocessor_config.json'), { ...CLIP_PROCESSOR_DEFAULTS, crop: null }, 32, '/m')).not.toThrow();
    expect(() => parseProcessorConfig('p.json', { resample: 0 }, VIT_PROCESSOR_DEFAULTS)).toThrow(
      'p.json: invalid image processor config: "resample" 0 is not supported (2 = bilinear, 3 = bicubic)',
    );
    expect(() => parseProcessorConfig('p.json', { size: { shortest_edge: 224 }, do_center_crop: false }, CLIP_PROCESSOR_DEFAULTS)).not.toThrow();
    expect(fixedOutputSize(parseProcessorConfig('p.json', { size: { shortest_edge: 224 }, do_center_crop: false }, CLIP_PROCESSOR_DEFAULTS))).toBeNull();
  });
});
