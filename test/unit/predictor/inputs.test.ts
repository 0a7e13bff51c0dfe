import { describe, expect, it } from 'vitest';
import { InputValidationError, resolveInput } from '../../../src/predictor/inputs.js';
import { INPUT_NAMES, INPUT_SCHEMA, MAX_PROMPT_CHARACTERS } from '../../../src/predictor/schema.js';
import { roundSide, txt2imgSize } from '../../../src/predictor/sizing.js';

function problems(input: unknown): { input: string; message: string }[] {
  try {
    resolveInput(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InputValidationError);
    return (error as InputValidationError).problems;
  }
  throw new Error('expected a validation error');
}

describe('input schema', () => {
  it('has the 21 inputs of the contract in order, then the loras extension, with their defaults and bounds', () => {
    expect(INPUT_NAMES).toEqual([
      'prompt',
      'image',
      'mask',
      'aspect_ratio',
      'height',
      'width',
      'prompt_strength',
      'model',
      'num_outputs',
      'num_inference_steps',
      'guidance_scale',
      'seed',
      'output_format',
      'output_quality',
      'disable_safety_checker',
      'go_fast',
      'megapixels',
      'replicate_weights',
      'lora_scale',
      'extra_lora',
      'extra_lora_scale',
      'loras',
    ]);
    expect(INPUT_SCHEMA.properties.loras).toMatchObject({ type: 'array', maxItems: 8, 'x-order': 21 });
    expect(INPUT_SCHEMA.properties.num_inference_steps).toMatchObject({ default: 28, minimum: 1, maximum: 50, 'x-order': 9 });
    expect(INPUT_SCHEMA.properties.megapixels).toMatchObject({ enum: ['1', '0.25'], default: '1' });
  });
});

describe('txt2img sizes (docs/reference-behaviour.md §7.1, with docs/decisions.md rounding)', () => {
  it.each([
    ['1:1', '1', 1024, 1024],
    ['1:1', '0.25', 512, 512],
    ['16:9', '1', 1344, 768],
    ['16:9', '0.25', 672, 384],
    ['21:9', '0.25', 768, 320],
    ['3:2', '1', 1216, 832],
    ['2:3', '0.25', 416, 608],
    ['4:5', '1', 896, 1088],
    ['5:4', '0.25', 544, 448],
    ['3:4', '1', 896, 1152],
    ['4:3', '0.25', 576, 448],
    ['9:16', '1', 768, 1344],
    ['9:21', '0.25', 320, 768],
  ] as const)('%s at %s MP → %i×%i', (ratio, mp, w, h) => {
    expect(txt2imgSize(ratio, mp)).toEqual({ width: w, height: h });
  });

  it('rounds custom sides to the nearest multiple of 16 (ties up) within 256..1440', () => {
    expect([1000, 500, 257, 1439, 1440, 256, 264, 263].map(roundSide)).toEqual([1008, 496, 256, 1440, 1440, 256, 272, 256]);
    expect(txt2imgSize('custom', '0.25', 768, 768)).toEqual({ width: 768, height: 768 });
  });
});

describe('resolving a request', () => {
  it('applies the contract defaults', () => {
    const r = resolveInput({ prompt: 'a cat' });
    expect(r).toMatchObject({
      mode: 'txt2img',
      size: { width: 1024, height: 1024 },
      model: 'dev',
      steps: 28,
      guidance: 3,
      numOutputs: 1,
      outputFormat: 'webp',
      outputQuality: 80,
      goFast: false,
      disableSafetyChecker: false,
      promptStrength: 0.8,
      loras: [],
      seedRandom: true,
    });
    expect(r.seed).toBeGreaterThanOrEqual(0);
    expect(r.seed).toBeLessThan(2 ** 32);
  });

  it('runs schnell with 4 steps unless steps are given, and keeps explicit values', () => {
    expect(resolveInput({ prompt: 'x', model: 'schnell' }).steps).toBe(4);
    expect(resolveInput({ prompt: 'x', model: 'schnell', num_inference_steps: 28 }).steps).toBe(28);
    expect(resolveInput({ prompt: 'x', num_inference_steps: 7 }).steps).toBe(7);
  });

  it('resolves seeds: given, wrapped into 32 bits, or random when absent or negative', () => {
    expect(resolveInput({ prompt: 'x', seed: 42 })).toMatchObject({ seed: 42, seedRandom: false });
    expect(resolveInput({ prompt: 'x', seed: 0 }).seed).toBe(0);
    expect(resolveInput({ prompt: 'x', seed: 4294967296 + 5 }).seed).toBe(5);
    expect(resolveInput({ prompt: 'x', seed: -5 }).seedRandom).toBe(true);
  });

  it('accepts prompts up to MAX_PROMPT_CHARACTERS (the encoders truncate them) and refuses longer ones naming prompt', () => {
    expect(resolveInput({ prompt: 'x'.repeat(MAX_PROMPT_CHARACTERS) }).prompt).toHaveLength(MAX_PROMPT_CHARACTERS);
    expect(problems({ prompt: 'x'.repeat(1_000_000) })).toEqual([
      { input: 'prompt', message: `has 1000000 characters, more than the maximum ${MAX_PROMPT_CHARACTERS}` },
    ]);
  });

  it('picks the mode and ignores the size inputs when an image is given', () => {
    expect(resolveInput({ prompt: 'x', image: 'data:image/png;base64,AA' })).toMatchObject({ mode: 'img2img' });
    expect(resolveInput({ prompt: 'x', image: 'https://example.com/a.png', mask: 'https://example.com/m.png', aspect_ratio: 'custom' })).toMatchObject({
      mode: 'inpaint',
    });
    expect(resolveInput({ prompt: 'x', image: 'https://example.com/a.png' }).size).toBeUndefined();
    expect(resolveInput({ prompt: 'x', aspect_ratio: '16:9', width: 512, height: 512 }).size).toEqual({ width: 1344, height: 768 });
  });

  it('lists the LoRA inputs with their scales: main, extra, then the loras list', () => {
    expect(
      resolveInput({ prompt: 'x', replicate_weights: 'a/b', lora_scale: 0.5, extra_lora: 'c/d', loras: [{ weights: 'e/f', scale: 2 }, { weights: 'g/h' }] })
        .loras,
    ).toEqual([
      { input: 'replicate_weights', source: 'a/b', scale: 0.5 },
      { input: 'extra_lora', source: 'c/d', scale: 1 },
      { input: 'loras[0]', source: 'e/f', scale: 2 },
      { input: 'loras[1]', source: 'g/h', scale: 1 },
    ]);
    // extra_lora alone is applied with its own scale (docs/decisions.md), not ignored or promoted.
    expect(resolveInput({ prompt: 'x', extra_lora: 'c/d', extra_lora_scale: -0.5 }).loras).toEqual([{ input: 'extra_lora', source: 'c/d', scale: -0.5 }]);
    expect(problems({ prompt: 'x', loras: [{ weights: 'a/b', scale: 5 }, { scale: 1 }, { weights: 'c/d', extra: 1 }] })).toEqual([
      { input: 'loras[0].scale', message: '5 is above the maximum 3' },
      { input: 'loras[1].weights', message: 'is required' },
      { input: 'loras[2].extra', message: 'is not a known field' },
    ]);
    const malformed: [unknown, string][] = [
      ['x', 'loras'],
      [5, 'loras'],
      [{}, 'loras'],
      [[null], 'loras[0]'],
      [[5], 'loras[0]'],
    ];
    for (const [loras, input] of malformed) expect(problems({ prompt: 'x', loras }).map((p) => p.input)).toEqual([input]);
    const eight = Array.from({ length: 7 }, (_, i) => ({ weights: `o/l${i}` }));
    expect(problems({ prompt: 'x', replicate_weights: 'a/b', extra_lora: 'c/d', loras: eight })).toEqual([
      { input: 'loras', message: 'at most 8 LoRAs in all (replicate_weights, extra_lora and loras), got 9' },
    ]);
  });

  it('collects every problem, each naming its input', () => {
    expect(problems({ prompt: 'x', num_outputs: 5, output_format: 'gif', lora_scale: 4, steps: 3 })).toEqual([
      { input: 'steps', message: 'is not an input of this model' },
      { input: 'num_outputs', message: '5 is above the maximum 4' },
      { input: 'output_format', message: 'must be one of "webp", "jpg", "png"' },
      { input: 'lora_scale', message: '4 is above the maximum 3' },
    ]);
    expect(problems({})).toEqual([{ input: 'prompt', message: 'is required' }]);
    expect(problems({ prompt: 'x', aspect_ratio: 'custom', width: 512 })).toEqual([{ input: 'height', message: 'is required when aspect_ratio is "custom"' }]);
    expect(problems({ prompt: 'x', mask: 'https://example.com/m.png' })).toEqual([
      { input: 'mask', message: 'needs an image: a mask marks which parts of `image` to repaint' },
    ]);
    expect(problems({ prompt: 'x', image: 'https://example.com/a.png', prompt_strength: 0 })).toEqual([
      { input: 'prompt_strength', message: 'must be greater than 0 with an image (0 leaves no denoising step)' },
    ]);
    expect(problems({ prompt: 'x', seed: 1.5, width: 100 })).toEqual([
      { input: 'width', message: '100 is below the minimum 256' },
      { input: 'seed', message: '1.5 is not a whole number' },
    ]);
    expect(problems('a cat')).toEqual([{ input: '(request)', message: 'the input must be a JSON object' }]);
  });

  it('words every schema problem as a sentence naming the value given', () => {
    expect(problems({ prompt: 5, width: 2000, aspect_ratio: 'custom', height: 512, go_fast: 'yes', num_outputs: '2', guidance_scale: 'high' })).toEqual([
      { input: 'prompt', message: '5 is not text' },
      { input: 'width', message: '2000 is above the maximum 1440' },
      { input: 'num_outputs', message: '"2" is not a whole number' },
      { input: 'guidance_scale', message: '"high" is not a number' },
      { input: 'go_fast', message: '"yes" is not true or false' },
    ]);
    expect(problems({ prompt: 'x', loras: 'a/b' })).toEqual([{ input: 'loras', message: '"a/b" is not a list' }]);
    expect(problems({ prompt: 'x', loras: [{ weights: '' }] })).toEqual([{ input: 'loras[0].weights', message: 'must not be empty' }]);
    expect(problems({ prompt: 'x', loras: Array.from({ length: 9 }, () => ({ weights: 'a/b' })) })[0]).toEqual({
      input: 'loras',
      message: 'has 9 items, more than the maximum 8',
    });
  });

  it('names the inputs that are given but not used, for the log', () => {
    expect(resolveInput({ prompt: 'x' }).unused).toEqual([]);
    expect(resolveInput({ prompt: 'x', aspect_ratio: 'custom', width: 512, height: 512 }).unused).toEqual([]);
    expect(resolveInput({ prompt: 'x', aspect_ratio: '16:9', width: 512, height: 600 }).unused).toEqual([
      '[!] width and height not used: aspect_ratio is "16:9" (set aspect_ratio=custom to choose the size)',
    ]);
    expect(resolveInput({ prompt: 'x', image: 'https://e.com/a.png', aspect_ratio: '4:3', height: 600 }).unused).toEqual([
      "[!] aspect_ratio, height not used: the output takes the input image's size",
    ]);
  });

  it('treats "" as not given for the optional text inputs (forms send every field)', () => {
    const resolved = resolveInput({ prompt: 'x', image: '', mask: '', replicate_weights: '', extra_lora: '' });
    expect(resolved.mode).toBe('txt2img');
    expect(resolved.loras).toEqual([]);
    expect(resolved).not.toHaveProperty('image');
    expect(resolved).not.toHaveProperty('mask');
    // A mask with an empty image is still a mask without an image; "" is not a prompt.
    expect(problems({ prompt: 'x', image: '', mask: 'https://example.com/m.png' }).map((p) => p.input)).toEqual(['mask']);
    expect(resolveInput({ prompt: 'x', replicate_weights: '', extra_lora: 'c/d' }).loras).toEqual([{ input: 'extra_lora', source: 'c/d', scale: 1 }]);
  });
});
