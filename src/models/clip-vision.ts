/**
 * Stage 1 of the safety checker: diffusers' StableDiffusionSafetyChecker (golden/safety/README.md
 * §2–3), a CLIP vision tower (ViT-L/14 in the CompVis release) with its visual projection, plus
 * the concept and special-care embeddings and thresholds stored beside it. The tower: patch
 * tokens, pre_layrnorm, pre-LN quick-GELU layers, post_layernorm on the class token only, then
 * image_embeds = pooled·Wprojᵀ. Its CLIPImageProcessor settings come with it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RgbImage } from '../images/decode.js';
import { GraphBuilder, type BuiltModel } from '../onnx/graph.js';
import * as op from '../onnx/ops/index.js';
import type { InferenceWorker, RemoteSession } from '../onnx/runner.js';
import type { SessionSettings } from '../onnx/session-options.js';
import type { TensorData, TensorMap } from '../onnx/tensor-data.js';
import { activation, configError, openSafetyCheckpoint, positiveNumber, type SafetyCheckpoint, type SafetyModelKind } from '../safety/checkpoint.js';
import type { SafetyConcepts } from '../safety/concepts.js';
import { CLIP_PROCESSOR_DEFAULTS, ImageProcessor } from '../safety/processor.js';
import { encoder, layerNorm, linear, patchTokens, storedWeights, type EncoderLayer } from '../safety/vision-graph.js';
import type { TensorSource } from '../weights/safetensors.js';
import { positiveInt } from './text/checkpoint.js';

export interface ClipVisionConfig {
  hidden: number;
  heads: number;
  intermediate: number;
  layers: number;
  imageSize: number;
  patchSize: number;
  eps: number;
  activation: 'quick_gelu' | 'gelu';
  projectionDim: number;
}

/** diffusers hard-codes 17 concepts and 3 special-care concepts. */
export const CONCEPTS = 17;
export const SPECIAL_CONCEPTS = 3;

const TOWER = 'vision_model.vision_model';
const LAYER = (i: number) => `${TOWER}.encoder.layers.${i}`;

/** Outputs in graph order: the intermediates the golden cases hold, then the one the checker needs. */
export const CLIP_VISION_OUTPUTS = ['embeddings', 'pre_layrnorm', 'last_hidden_state', 'pooled_output', 'image_embeds'] as const;

function layerNames(i: number): EncoderLayer {
  const l = LAYER(i);
  return {
    norm1: `${l}.layer_norm1`,
    q: `${l}.self_attn.q_proj`,
    k: `${l}.self_attn.k_proj`,
    v: `${l}.self_attn.v_proj`,
    out: `${l}.self_attn.out_proj`,
    norm2: `${l}.layer_norm2`,
    fc1: `${l}.mlp.fc1`,
    fc2: `${l}.mlp.fc2`,
  };
}

function tokens(c: ClipVisionConfig): number {
  return (c.imageSize / c.patchSize) ** 2 + 1;
}

/** The CLIPConfig's vision part over CLIPVisionConfig's defaults (`vision_config_dict` overrides, as transformers does). */
function fromConfig(source: string, raw: Record<string, unknown>): ClipVisionConfig {
  const error = configError(source);
  const nested = (key: string) => (typeof raw[key] === 'object' && raw[key] !== null ? (raw[key] as Record<string, unknown>) : {});
  const vision = { ...nested('vision_config'), ...nested('vision_config_dict') };
  const int = (key: string, fallback: number) => positiveInt(error, vision, key, fallback);
  if (int('num_channels', 3) !== 3) throw error('vision_config.num_channels must be 3 (RGB)');
  const c: ClipVisionConfig = {
    hidden: int('hidden_size', 768),
    heads: int('num_attention_heads', 12),
    intermediate: int('intermediate_size', 3072),
    layers: int('num_hidden_layers', 12),
    imageSize: int('image_size', 224),
    patchSize: int('patch_size', 32),
    eps: positiveNumber(source, vision, 'layer_norm_eps', 1e-5),
    activation: activation(source, vision, 'quick_gelu', ['quick_gelu', 'gelu']),
    projectionDim: positiveInt(error, raw, 'projection_dim', 512),
  };
  if (c.hidden % c.heads !== 0) throw error(`hidden_size ${c.hidden} is not divisible by ${c.heads} heads`);
  if (c.imageSize % c.patchSize !== 0) throw error(`image_size ${c.imageSize} is not a multiple of patch_size ${c.patchSize}`);
  return c;
}

/** From the shapes alone: CLIP vision towers use 64-wide heads, eps 1e-5 and quick-GELU. */
function infer(source: string, tensors: TensorSource): ClipVisionConfig {
  const shape = (name: string) => {
    if (!tensors.has(name)) throw configError(source)(`cannot infer the config: "${name}" is missing`);
    return tensors.info(name).shape;
  };
  const [hidden, , patchSize] = shape(`${TOWER}.embeddings.patch_embedding.weight`) as [number, number, number];
  let layers = 0;
  while (tensors.has(`${LAYER(layers)}.layer_norm1.weight`)) layers++;
  const side = Math.sqrt((shape(`${TOWER}.embeddings.position_embedding.weight`)[0] as number) - 1);
  if (hidden % 64 !== 0 || !Number.isInteger(side)) throw configError(source)('cannot infer the config from the shapes; put the config.json beside the weights');
  return {
    hidden,
    heads: hidden / 64,
    intermediate: shape(`${LAYER(0)}.mlp.fc1.weight`)[0] as number,
    layers,
    imageSize: side * patchSize,
    patchSize,
    eps: 1e-5,
    activation: 'quick_gelu',
    projectionDim: shape('visual_projection.weight')[0] as number,
  };
}

function expected(c: ClipVisionConfig): Map<string, number[]> {
  const h = c.hidden;
  const shapes = new Map<string, number[]>([
    [`${TOWER}.embeddings.class_embedding`, [h]],
    [`${TOWER}.embeddings.patch_embedding.weight`, [h, 3, c.patchSize, c.patchSize]],
    [`${TOWER}.embeddings.position_embedding.weight`, [tokens(c), h]],
    ['visual_projection.weight', [c.projectionDim, h]],
    ['concept_embeds', [CONCEPTS, c.projectionDim]],
    ['special_care_embeds', [SPECIAL_CONCEPTS, c.projectionDim]],
    ['concept_embeds_weights', [CONCEPTS]],
    ['special_care_embeds_weights', [SPECIAL_CONCEPTS]],
  ]);
  const vector = (module: string, size: number) => [`${module}.weight`, `${module}.bias`].forEach((n) => shapes.set(n, [size]));
  const matrix = (module: string, out: number, inp: number) => {
    shapes.set(`${module}.weight`, [out, inp]);
    shapes.set(`${module}.bias`, [out]);
  };
  vector(`${TOWER}.pre_layrnorm`, h);
  vector(`${TOWER}.post_layernorm`, h);
  for (let i = 0; i < c.layers; i++) {
    const l = layerNames(i);
    vector(l.norm1, h);
    vector(l.norm2, h);
    for (const m of [l.q, l.k, l.v, l.out]) matrix(m, h, h);
    matrix(l.fc1, c.intermediate, h);
    matrix(l.fc2, h, c.intermediate);
  }
  return shapes;
}

export const CLIP_VISION_KIND: SafetyModelKind<ClipVisionConfig> = {
  label: 'safety checker (CLIP vision tower)',
  subfolder: 'safety_checker',
  marker: `${TOWER}.embeddings.class_embedding`,
  // A legacy buffer (0..T−1) the CompVis file still carries.
  ignored: [`${TOWER}.embeddings.position_ids`],
  fromConfig,
  infer,
  expected,
};

function buildGraph(checkpoint: SafetyCheckpoint<ClipVisionConfig>): BuiltModel {
  const c = checkpoint.config;
  const g = new GraphBuilder('safety-clip');
  const weights = storedWeights(g, (name) => checkpoint.locate(name));
  const pixels = g.input('pixel_values', 'float32', ['batch', 3, c.imageSize, c.imageSize]);
  const embeddings = patchTokens(
    g,
    pixels,
    {
      patch: c.patchSize,
      hidden: c.hidden,
      tokens: tokens(c),
      weight: `${TOWER}.embeddings.patch_embedding.weight`,
      bias: null,
      classToken: `${TOWER}.embeddings.class_embedding`,
      positions: `${TOWER}.embeddings.position_embedding.weight`,
    },
    weights,
  );
  const pre = layerNorm(g, embeddings, `${TOWER}.pre_layrnorm`, c.eps, weights);
  const layers = Array.from({ length: c.layers }, (_, i) => layerNames(i));
  const last = encoder(g, pre, { heads: c.heads, eps: c.eps, activation: c.activation, qkvBias: true, layers }, weights);
  const cls = op.squeeze(g, op.slice(g, last, { starts: [0], ends: [1], axes: [1] }), [1]);
  const pooled = layerNorm(g, cls, `${TOWER}.post_layernorm`, c.eps, weights);
  const values = [embeddings, pre, last, pooled, linear(g, pooled, 'visual_projection', weights, false)];
  values.forEach((v, i) => g.output(v, CLIP_VISION_OUTPUTS[i]));
  return g.build();
}

async function readConcepts(checkpoint: SafetyCheckpoint<ClipVisionConfig>): Promise<SafetyConcepts> {
  const read = (name: string) => checkpoint.source.readFloat32(name);
  return {
    special: { embeds: await read('special_care_embeds'), thresholds: Array.from(await read('special_care_embeds_weights')) },
    concept: { embeds: await read('concept_embeds'), thresholds: Array.from(await read('concept_embeds_weights')) },
    dim: checkpoint.config.projectionDim,
  };
}

/** preprocessor_config.json beside the weights, else the pipeline's feature_extractor/ (diffusers layout). */
function processorFile(folder: string): string | null {
  return [join(folder, 'preprocessor_config.json'), join(folder, '..', 'feature_extractor', 'preprocessor_config.json')].find((f) => existsSync(f)) ?? null;
}

export class ClipVisionModel {
  private constructor(
    readonly checkpoint: SafetyCheckpoint<ClipVisionConfig>,
    readonly concepts: SafetyConcepts,
    readonly processor: ImageProcessor,
    private readonly session: RemoteSession,
  ) {}

  get config(): ClipVisionConfig {
    return this.checkpoint.config;
  }

  static async load(worker: InferenceWorker, path: string, settings?: SessionSettings): Promise<ClipVisionModel> {
    const checkpoint = await openSafetyCheckpoint(path, CLIP_VISION_KIND);
    const processor = ImageProcessor.load(processorFile(checkpoint.folder), CLIP_PROCESSOR_DEFAULTS, checkpoint.config.imageSize, checkpoint.folder);
    const concepts = await readConcepts(checkpoint);
    return new ClipVisionModel(checkpoint, concepts, processor, await worker.load(buildGraph(checkpoint), settings));
  }

  /** The images through this model's CLIPImageProcessor, as one batch. */
  preprocess(images: readonly { image: RgbImage; index: number }[]): TensorData {
    return this.processor.batch(images);
  }

  /** pixel_values [B, 3, S, S] → image_embeds [B, D], with the golden intermediates when asked for. */
  async run(pixels: TensorData, options: { intermediates?: boolean; signal?: AbortSignal } = {}): Promise<TensorMap> {
    this.processor.checkPixels(pixels);
    return this.session.run({ pixel_values: pixels }, { signal: options.signal, ...(options.intermediates ? {} : { outputs: ['image_embeds'] }) });
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
