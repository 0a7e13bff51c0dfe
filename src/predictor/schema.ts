/**
 * The prediction input schema (docs/inputs.md), as JSON Schema: the one definition the
 * predictor validates with and the HTTP server publishes (titles, descriptions, defaults,
 * enums, bounds, x-order).
 */
import { OUTPUT_FORMATS } from '../images/encode.js';

export const ASPECT_RATIOS = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21', 'custom'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];

const LORA_SOURCES =
  "Load LoRA weights. Supports Replicate models in the format <owner>/<username> or <owner>/<username>/<version>, HuggingFace URLs in the format huggingface.co/<owner>/<model-name>, CivitAI URLs in the format civitai.com/models/<id>[/<model-name>], or arbitrary .safetensors URLs from the Internet. For example, 'fofr/flux-pixar-cars'";
const LORA_SCALE =
  "Determines how strongly the %s LoRA should be applied. Sane results between 0 and 1 for base inference. For go_fast we apply a 1.5x multiplier to this value; we've generally seen good performance when scaling the base value by that amount. You may still need to experiment to find the best value for your particular lora.";

type Property = Record<string, unknown> & { 'x-order': number };

/** Longest prompt accepted; longer ones are refused (422), shorter ones truncated to the encoders' limits as the reference does. */
export const MAX_PROMPT_CHARACTERS = 20_000;

const properties: Record<string, Property> = {
  prompt: {
    type: 'string',
    // flux-lora's bound (the encoders take at most 512 T5 tokens, ~2,000 characters of English; see src/models/text/prompt-window.ts).
    maxLength: MAX_PROMPT_CHARACTERS,
    title: 'Prompt',
    description:
      'Prompt for generated image. If you include the `trigger_word` used in the training process you are more likely to activate the trained object, style, or concept in the resulting image.',
  },
  image: {
    type: 'string',
    format: 'uri',
    title: 'Image',
    description: 'Input image for image to image or inpainting mode. If provided, aspect_ratio, width, and height inputs are ignored.',
  },
  mask: {
    type: 'string',
    format: 'uri',
    title: 'Mask',
    description: 'Image mask for image inpainting mode. If provided, aspect_ratio, width, and height inputs are ignored.',
  },
  aspect_ratio: {
    type: 'string',
    enum: [...ASPECT_RATIOS],
    default: '1:1',
    title: 'Aspect Ratio',
    description: 'Aspect ratio for the generated image. If custom is selected, uses height and width below & will run in bf16 mode',
  },
  height: {
    type: 'integer',
    minimum: 256,
    maximum: 1440,
    title: 'Height',
    description:
      'Height of generated image. Only works if `aspect_ratio` is set to custom. Will be rounded to nearest multiple of 16. Incompatible with fast generation',
  },
  width: {
    type: 'integer',
    minimum: 256,
    maximum: 1440,
    title: 'Width',
    description:
      'Width of generated image. Only works if `aspect_ratio` is set to custom. Will be rounded to nearest multiple of 16. Incompatible with fast generation',
  },
  prompt_strength: {
    type: 'number',
    minimum: 0,
    maximum: 1,
    default: 0.8,
    title: 'Prompt Strength',
    description: 'Prompt strength when using img2img. 1.0 corresponds to full destruction of information in image',
  },
  model: {
    type: 'string',
    enum: ['dev', 'schnell'],
    default: 'dev',
    title: 'Model',
    description: 'Which model to run inference with. The dev model performs best with around 28 inference steps but the schnell model only needs 4 steps.',
  },
  num_outputs: { type: 'integer', minimum: 1, maximum: 4, default: 1, title: 'Num Outputs', description: 'Number of outputs to generate' },
  num_inference_steps: {
    type: 'integer',
    minimum: 1,
    maximum: 50,
    default: 28,
    title: 'Num Inference Steps',
    description: 'Number of denoising steps. More steps can give more detailed images, but take longer.',
  },
  guidance_scale: {
    type: 'number',
    minimum: 0,
    maximum: 10,
    default: 3,
    title: 'Guidance Scale',
    description: 'Guidance scale for the diffusion process. Lower values can give more realistic images. Good values to try are 2, 2.5, 3 and 3.5',
  },
  seed: { type: 'integer', title: 'Seed', description: 'Random seed. Set for reproducible generation' },
  output_format: { type: 'string', enum: [...OUTPUT_FORMATS], default: 'webp', title: 'Output Format', description: 'Format of the output images' },
  output_quality: {
    type: 'integer',
    minimum: 0,
    maximum: 100,
    default: 80,
    title: 'Output Quality',
    description: 'Quality when saving the output images, from 0 to 100. 100 is best quality, 0 is lowest quality. Not relevant for .png outputs',
  },
  disable_safety_checker: { type: 'boolean', default: false, title: 'Disable Safety Checker', description: 'Disable safety checker for generated images.' },
  go_fast: {
    type: 'boolean',
    default: false,
    title: 'Go Fast',
    description: 'Run faster predictions with model optimized for speed (currently fp8 quantized); disable to run in original bf16',
  },
  megapixels: { type: 'string', enum: ['1', '0.25'], default: '1', title: 'Megapixels', description: 'Approximate number of megapixels for generated image' },
  replicate_weights: { type: 'string', title: 'Replicate Weights', description: LORA_SOURCES },
  lora_scale: { type: 'number', minimum: -1, maximum: 3, default: 1, title: 'Lora Scale', description: LORA_SCALE.replace('%s', 'main') },
  extra_lora: { type: 'string', title: 'Extra Lora', description: LORA_SOURCES },
  extra_lora_scale: { type: 'number', minimum: -1, maximum: 3, default: 1, title: 'Extra Lora Scale', description: LORA_SCALE.replace('%s', 'extra') },
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
