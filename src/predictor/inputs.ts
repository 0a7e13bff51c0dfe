/**
 * Validates a prediction request against the input schema and the rules of docs/decisions.md,
 * collecting every problem with the input it concerns, then resolves defaults and derived
 * values: mode, txt2img size, model-specific steps, seed, back-end.
 */
import { randomInt } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import type { OutputFormat } from '../images/encode.js';
import { INPUT_SCHEMA, MAX_LORAS, MAX_PROMPT_CHARACTERS, type AspectRatio } from './schema.js';
import { txt2imgSize } from './sizing.js';

export interface InputProblem {
  /** The input the problem concerns (as the schema names it). */
  input: string;
  message: string;
}

export class InputValidationError extends Error {
  constructor(readonly problems: InputProblem[]) {
    super(`invalid input: ${problems.map((p) => `${p.input}: ${p.message}`).join('; ')}`);
    this.name = 'InputValidationError';
  }
}

export interface RawInput {
  prompt: string;
  image?: string;
  mask?: string;
  aspect_ratio: AspectRatio;
  height?: number;
  width?: number;
  prompt_strength: number;
  model: 'dev' | 'schnell';
  num_outputs: number;
  num_inference_steps?: number;
  guidance_scale: number;
  seed?: number;
  output_format: OutputFormat;
  output_quality: number;
  disable_safety_checker: boolean;
  go_fast: boolean;
  megapixels: '1' | '0.25';
  replicate_weights?: string;
  lora_scale: number;
  extra_lora?: string;
  extra_lora_scale: number;
  loras?: { weights: string; scale: number }[];
}

export interface ResolvedInput {
  prompt: string;
  mode: 'txt2img' | 'img2img' | 'inpaint';
  image?: string;
  mask?: string;
  /** txt2img size; image modes take theirs from the image (src/images/sizing.ts). */
  size?: { width: number; height: number };
  promptStrength: number;
  model: 'dev' | 'schnell';
  numOutputs: number;
  steps: number;
  /** Guidance for dev; schnell has no guidance embedding. */
  guidance: number;
  seed: number;
  /** Whether the seed was drawn at random (absent or negative). */
  seedRandom: boolean;
  outputFormat: OutputFormat;
  outputQuality: number;
  disableSafetyChecker: boolean;
  goFast: boolean;
  /** Requested LoRAs in application order, each with the input it came from and its strength. */
  loras: { input: string; source: string; scale: number }[];
  /** Inputs given but not used, one log line each (`[!] …`): a silent change would surprise. */
  unused: string[];
}

/** Inputs that were given but have no effect with the others, said once in the log. */
function unusedInputs(raw: RawInput): string[] {
  const sizeInputs = (['width', 'height'] as const).filter((side) => raw[side] !== undefined);
  if (raw.image !== undefined) {
    const given = [...(raw.aspect_ratio !== '1:1' ? ['aspect_ratio'] : []), ...sizeInputs];
    return given.length === 0 ? [] : [`[!] ${given.join(', ')} not used: the output takes the input image's size`];
  }
  if (raw.aspect_ratio !== 'custom' && sizeInputs.length > 0) {
    return [`[!] ${sizeInputs.join(' and ')} not used: aspect_ratio is "${raw.aspect_ratio}" (set aspect_ratio=custom to choose the size)`];
  }
  return [];
}

// `uri` inputs are checked by the readers that fetch them (data URIs, http(s), files where allowed).
// `verbose` keeps the offending value on each error, so messages can name it.
const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: false, strict: false, verbose: true, formats: { uri: true } });
// The published default of num_inference_steps (28) is dev's; schnell without explicit steps runs 4,
// so the validator must not fill it in.
const validationSchema = structuredClone(INPUT_SCHEMA) as { properties: Record<string, Record<string, unknown>> };
delete validationSchema.properties.num_inference_steps?.default;
// The prompt's cap is checked with String.length in resolveInput: Ajv counts code points one by one,
// which on a megabyte prompt holds the event loop for tens of milliseconds.
delete validationSchema.properties.prompt?.maxLength;
const validateSchema = ajv.compile(validationSchema);

function problemOf(error: ErrorObject): InputProblem {
  // "/loras/0/scale" → "loras[0].scale"
  const fromPath = error.instancePath
    .replace(/^\//, '')
    .replace(/\/(\d+)/g, '[$1]')
    .replace(/\//g, '.');
  const child = (name: unknown) => (fromPath === '' ? String(name) : `${fromPath}.${String(name)}`);
  if (error.keyword === 'required') return { input: child(error.params.missingProperty), message: 'is required' };
  if (error.keyword === 'additionalProperties') {
    return { input: child(error.params.additionalProperty), message: fromPath === '' ? 'is not an input of this model' : 'is not a known field' };
  }
  if (error.keyword === 'enum')
    return { input: fromPath, message: `must be one of ${(error.params.allowedValues as string[]).map((v) => JSON.stringify(v)).join(', ')}` };
  return { input: fromPath || '(request)', message: sentenceOf(error) };
}

const TYPE_NAMES: Record<string, string> = {
  integer: 'a whole number',
  number: 'a number',
  string: 'text',
  boolean: 'true or false',
  array: 'a list',
  object: 'an object',
};

/** A value as JSON for a message, cut to 60 characters (a wrong value may be megabytes). */
function shortValue(value: unknown): string {
  const text = typeof value === 'string' && value.length > 60 ? JSON.stringify(`${value.slice(0, 57)}…`) : (JSON.stringify(value) ?? String(value));
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

/** Ajv's terse keyword messages ("must be <= 4") as sentences that name the value given. */
function sentenceOf(error: ErrorObject): string {
  const given = shortValue(error.data);
  const params = error.params as { type?: string; limit?: number };
  switch (error.keyword) {
    case 'type':
      return `${given} is not ${TYPE_NAMES[params.type ?? ''] ?? params.type}`;
    case 'minimum':
      return `${given} is below the minimum ${params.limit}`;
    case 'maximum':
      return `${given} is above the maximum ${params.limit}`;
    case 'minLength':
      return 'must not be empty';
    case 'maxItems':
      return `has ${(error.data as unknown[]).length} items, more than the maximum ${params.limit}`;
    default:
      return error.message ?? 'is invalid';
  }
}

/** Optional text inputs that forms and clients send as "" when unset: "" means not given (docs/decisions.md). */
const EMPTY_MEANS_UNSET = ['image', 'mask', 'replicate_weights', 'extra_lora'] as const;

/** Seeds must fit the noise generator (0..2^32−1); larger values wrap, as PyTorch's CPU generator does. */
function resolveSeed(seed: number | undefined): { seed: number; random: boolean } {
  if (seed === undefined || seed < 0) return { seed: randomInt(0, 2 ** 32), random: true };
  return { seed: Number(BigInt(seed) % 2n ** 32n), random: false };
}

export function resolveInput(request: unknown): ResolvedInput {
  const input = structuredClone(request);
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InputValidationError([{ input: '(request)', message: 'the input must be a JSON object' }]);
  }
  const fields = input as Record<string, unknown>;
  for (const name of EMPTY_MEANS_UNSET) if (fields[name] === '') delete fields[name];
  const problems: InputProblem[] = validateSchema(input) ? [] : (validateSchema.errors ?? []).map(problemOf);
  const raw = input as RawInput;
  if (typeof raw.prompt === 'string' && raw.prompt.length > MAX_PROMPT_CHARACTERS)
    problems.push({ input: 'prompt', message: `has ${raw.prompt.length} characters, more than the maximum ${MAX_PROMPT_CHARACTERS}` });
  if (raw.aspect_ratio === 'custom' && raw.image === undefined) {
    for (const side of ['width', 'height'] as const) {
      if (raw[side] === undefined && !problems.some((p) => p.input === side))
        problems.push({ input: side, message: 'is required when aspect_ratio is "custom"' });
    }
  }
  if (raw.mask !== undefined && raw.image === undefined)
    problems.push({ input: 'mask', message: 'needs an image: a mask marks which parts of `image` to repaint' });
  if (raw.image !== undefined && raw.prompt_strength === 0)
    problems.push({ input: 'prompt_strength', message: 'must be greater than 0 with an image (0 leaves no denoising step)' });
  const loras: ResolvedInput['loras'] = [];
  if (raw.replicate_weights !== undefined) loras.push({ input: 'replicate_weights', source: raw.replicate_weights, scale: raw.lora_scale });
  if (raw.extra_lora !== undefined) loras.push({ input: 'extra_lora', source: raw.extra_lora, scale: raw.extra_lora_scale });
  // Walked defensively: a malformed list has already been reported by the schema check.
  const extra: unknown[] = Array.isArray(raw.loras) ? raw.loras : [];
  extra.forEach((l, i) => {
    if (l !== null && typeof l === 'object') {
      const { weights, scale } = l as { weights: string; scale: number };
      loras.push({ input: `loras[${i}]`, source: weights, scale });
    }
  });
  if (loras.length > MAX_LORAS)
    problems.push({ input: 'loras', message: `at most ${MAX_LORAS} LoRAs in all (replicate_weights, extra_lora and loras), got ${loras.length}` });
  if (problems.length > 0) throw new InputValidationError(problems);

  const { seed, random } = resolveSeed(raw.seed);
  const mode = raw.image === undefined ? 'txt2img' : raw.mask === undefined ? 'img2img' : 'inpaint';
  return {
    prompt: raw.prompt,
    mode,
    ...(raw.image === undefined ? {} : { image: raw.image }),
    ...(raw.mask === undefined ? {} : { mask: raw.mask }),
    ...(mode === 'txt2img' ? { size: txt2imgSize(raw.aspect_ratio, raw.megapixels, raw.width, raw.height) } : {}),
    promptStrength: raw.prompt_strength,
    model: raw.model,
    numOutputs: raw.num_outputs,
    // schnell without explicit steps runs 4 (docs/decisions.md); an explicit value is always honoured.
    steps: raw.num_inference_steps ?? (raw.model === 'schnell' ? 4 : 28),
    guidance: raw.guidance_scale,
    seed,
    seedRandom: random,
    outputFormat: raw.output_format,
    outputQuality: raw.output_quality,
    disableSafetyChecker: raw.disable_safety_checker,
    goFast: raw.go_fast,
    loras,
    unused: unusedInputs(raw),
  };
}
