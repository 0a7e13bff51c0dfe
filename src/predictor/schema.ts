/**
 * The prediction input schema (docs/inputs.md), as JSON Schema: the one definition the
 * predictor validates with and the HTTP server publishes (titles, descriptions, defaults,
 * enums, bounds, x-order).
 */
import { OUTPUT_FORMATS } from '../images/encode.js';

export const ASPECT_RATIOS = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21', 'custom'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];

const LORA_SOURCES =
  'A LoRA to apply: a Replicate model (owner/name[/version]), a Hugging Face repo or file (huggingface.co/owner/repo[/file.safetensors]), a CivitAI model page or download URL, any .safetensors or .tar URL, a data: URI, or a local file where the operator allows it. "" means none.';
const LORA_SCALE = 'Strength of %s, applied once: 0 turns it off, negative values invert it; go_fast multiplies it by 1.5.';

type Property = Record<string, unknown> & { 'x-order': number };

/** Longest prompt accepted; longer ones are refused (422), shorter ones truncated to the encoders' limits as the reference does. */
export const MAX_PROMPT_CHARACTERS = 20_000;

const properties: Record<string, Property> = {
  prompt: {
    type: 'string',
    // flux-lora's bound (the encoders take at most 512 T5 tokens, ~2,000 characters of English; see src/models/text/prompt-window.ts).
    maxLength: MAX_PROMPT_CHARACTERS,
    title: 'Prompt',
    description: "What to draw. Include a LoRA's trigger word (for example TOK) to bring in what it was trained on.",
  },
  image: {
    type: 'string',
    format: 'uri',
    title: 'Image',
    description:
      'An image to start from (img2img), or to repaint where `mask` is white (inpainting). Its size sets the output size; aspect_ratio, width, height and megapixels are then not used.',
  },
  mask: {
    type: 'string',
    format: 'uri',
    title: 'Mask',
    description: "With `image`: white areas are repainted, black areas kept. A mask of another size is resized to the image's (the log says so).",
  },
  aspect_ratio: {
    type: 'string',
    enum: [...ASPECT_RATIOS],
    default: '1:1',
    title: 'Aspect Ratio',
    description: 'Shape of the output when there is no image; `custom` takes width and height.',
  },
  height: {
    type: 'integer',
    minimum: 256,
    maximum: 1440,
    title: 'Height',
    description: 'Output height in pixels with aspect_ratio=custom, rounded to the nearest multiple of 16; not used otherwise (the log says so).',
  },
  width: {
    type: 'integer',
    minimum: 256,
    maximum: 1440,
    title: 'Width',
    description: 'Output width in pixels with aspect_ratio=custom, rounded to the nearest multiple of 16; not used otherwise (the log says so).',
  },
  prompt_strength: {
    type: 'number',
    minimum: 0,
    maximum: 1,
    default: 0.8,
    title: 'Prompt Strength',
    description: 'With an image: how much of it is repainted, from just above 0 (a light touch) to 1 (all of it).',
  },
  model: {
    type: 'string',
    enum: ['dev', 'schnell'],
    default: 'dev',
    title: 'Model',
    description: 'dev (follows guidance_scale; 28 steps by default) or schnell (no guidance; 4 steps by default).',
  },
  num_outputs: {
    type: 'integer',
    minimum: 1,
    maximum: 4,
    default: 1,
    title: 'Num Outputs',
    description: 'How many images to make; output i is the image that seed + i gives on its own.',
  },
  num_inference_steps: {
    type: 'integer',
    minimum: 1,
    maximum: 50,
    default: 28,
    title: 'Num Inference Steps',
    description: 'Denoising steps: more are slower and can add detail. Default 28 for dev, 4 for schnell.',
  },
  guidance_scale: {
    type: 'number',
    minimum: 0,
    maximum: 10,
    default: 3,
    title: 'Guidance Scale',
    description: 'How closely dev follows the prompt (2 to 3.5 works well; lower looks more natural). schnell ignores it.',
  },
  seed: {
    type: 'integer',
    title: 'Seed',
    description: 'Seed of the starting noise: the same seed and inputs give the same image. Absent or negative: random (the log prints it).',
  },
  output_format: { type: 'string', enum: [...OUTPUT_FORMATS], default: 'webp', title: 'Output Format', description: 'File format of the images.' },
  output_quality: {
    type: 'integer',
    minimum: 0,
    maximum: 100,
    default: 80,
    title: 'Output Quality',
    description: 'webp and jpg quality, from 0 (smallest file) to 100 (best); png ignores it.',
  },
  disable_safety_checker: {
    type: 'boolean',
    default: false,
    title: 'Disable Safety Checker',
    description: 'Return the images without running the safety checker on them.',
  },
  go_fast: {
    type: 'boolean',
    default: false,
    title: 'Go Fast',
    description: 'Run with 8-bit weights: faster and lighter, slightly different images; works in every mode. LoRA strengths are multiplied by 1.5.',
  },
  megapixels: {
    type: 'string',
    enum: ['1', '0.25'],
    default: '1',
    title: 'Megapixels',
    description: 'Output size for the preset aspect ratios: about 1 or 0.25 megapixels; not used with custom or an image.',
  },
  replicate_weights: { type: 'string', title: 'Replicate Weights', description: LORA_SOURCES },
  lora_scale: { type: 'number', minimum: -1, maximum: 3, default: 1, title: 'Lora Scale', description: LORA_SCALE.replace('%s', 'replicate_weights') },
  extra_lora: { type: 'string', title: 'Extra Lora', description: 'A second LoRA, from any source replicate_weights accepts. "" means none.' },
  extra_lora_scale: { type: 'number', minimum: -1, maximum: 3, default: 1, title: 'Extra Lora Scale', description: LORA_SCALE.replace('%s', 'extra_lora') },
  // flux-lora extension (not in the hosted schema): any number of LoRAs up to MAX_LORAS in all.
  loras: {
    type: 'array',
    maxItems: 8,
    title: 'Loras',
    description:
      'More LoRAs (flux-lora extension): a list of {"weights": <any source replicate_weights accepts>, "scale": <strength, -1..3, default 1>}, applied together with replicate_weights and extra_lora (at most 8 LoRAs in all). go_fast multiplies these strengths by 1.5 as well.',
    items: {
      type: 'object',
      required: ['weights'],
      additionalProperties: false,
      properties: { weights: { type: 'string', minLength: 1 }, scale: { type: 'number', minimum: -1, maximum: 3, default: 1 } },
    },
  },
} as unknown as Record<string, Property>;
Object.keys(properties).forEach((name, i) => ((properties[name] as Property)['x-order'] = i));

export const INPUT_SCHEMA = {
  type: 'object',
  title: 'Input',
  required: ['prompt'],
  additionalProperties: false,
  properties,
} as const;

export const INPUT_NAMES = Object.keys(properties);

/** LoRAs one prediction may apply, counting replicate_weights, extra_lora and the `loras` list. */
export const MAX_LORAS = 8;
