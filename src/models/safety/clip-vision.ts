/**
 * Stage 1 of the safety checker: diffusers' StableDiffusionSafetyChecker (test/golden/data/safety/README.md
 * §2–3), a CLIP vision tower (ViT-L/14 in the CompVis release) with its visual projection, plus
 * the concept and special-care embeddings and thresholds stored beside it. The tower: patch
 * tokens, pre_layrnorm, pre-LN quick-GELU layers, post_layernorm on the class token only, then
 * image_embeds = pooled·Wprojᵀ. Its CLIPImageProcessor settings come with it.
 */
import type { Device } from '../../onnx/device.js';
import { join } from 'node:path';
import { GraphBuilder, type BuiltModel } from '../../onnx/graph.js';
import type { InferenceWorker } from '../../onnx/runner.js';
import type { SessionSettings } from '../../onnx/session-options.js';
import { configError, type SafetyCheckpoint, type SafetyModelKind } from './checkpoint.js';
import type { SafetyConcepts } from './concepts.js';
import { CLIP_PROCESSOR_DEFAULTS } from './processor.js';
import { addLinearShapes, classToken, layerNorm, linear, storedWeights, tower, towerShapes, type TowerConfig, type TowerNames } from './vision-graph.js';
import { loadVisionParts, towerConfig, VisionModel, type VisionModelSpec, type VisionParts } from './vision-model.js';
import type { TensorSource } from '../../weights/safetensors.js';
import { positiveInt } from '../common/checkpoint.js';

export interface ClipVisionConfig extends TowerConfig {
  projectionDim: number;
}

/** diffusers hard-codes 17 concepts and 3 special-care concepts. */
export const CONCEPTS = 17;
export const SPECIAL_CONCEPTS = 3;

const TOWER = 'vision_model.vision_model';
const LAYER = (i: number) => `${TOWER}.encoder.layers.${i}`;

const NAMES: TowerNames = {
  patchWeight: `${TOWER}.embeddings.patch_embedding.weight`,
  patchBias: null,
  classToken: `${TOWER}.embeddings.class_embedding`,
  positions: `${TOWER}.embeddings.position_embedding.weight`,
  batchedEmbeddings: false,
  preNorm: `${TOWER}.pre_layrnorm`,
  layer: (i) => ({
    norm1: `${LAYER(i)}.layer_norm1`,
    q: `${LAYER(i)}.self_attn.q_proj`,
    k: `${LAYER(i)}.self_attn.k_proj`,
    v: `${LAYER(i)}.self_attn.v_proj`,
    out: `${LAYER(i)}.self_attn.out_proj`,
    norm2: `${LAYER(i)}.layer_norm2`,
    fc1: `${LAYER(i)}.mlp.fc1`,
    fc2: `${LAYER(i)}.mlp.fc2`,
  }),
};

/** Outputs in graph order: the intermediates the golden cases hold, the last one is what the checker needs. */
export const CLIP_VISION_OUTPUTS = ['embeddings', 'pre_layrnorm', 'last_hidden_state', 'pooled_output', 'image_embeds'] as const;

/** CLIPVisionConfig defaults: patch 32, eps 1e-5, quick-GELU. */
const CLIP_DEFAULTS = { patchSize: 32, eps: 1e-5, activation: 'quick_gelu' } as const;

/** The CLIPConfig's vision part over CLIPVisionConfig's defaults (`vision_config_dict` overrides, as transformers does). */
function fromConfig(source: string, raw: Record<string, unknown>): ClipVisionConfig {
  const nested = (key: string) => (typeof raw[key] === 'object' && raw[key] !== null ? (raw[key] as Record<string, unknown>) : {});
  const vision = towerConfig(source, { ...nested('vision_config'), ...nested('vision_config_dict') }, CLIP_DEFAULTS);
  return { ...vision, qkvBias: true, projectionDim: positiveInt(configError(source), raw, 'projection_dim', 512) };
}

/** From the shapes alone: CLIP vision towers use 64-wide heads, eps 1e-5 and quick-GELU. */
function infer(source: string, tensors: TensorSource): ClipVisionConfig {
  const shape = (name: string) => {
    if (!tensors.has(name)) throw configError(source)(`cannot infer the config: "${name}" is missing`);
    return tensors.info(name).shape;
  };
  const [hidden, , patchSize] = shape(NAMES.patchWeight) as [number, number, number];
  let layers = 0;
  while (tensors.has(`${LAYER(layers)}.layer_norm1.weight`)) layers++;
  const side = Math.sqrt((shape(NAMES.positions)[0] as number) - 1);
  if (hidden % 64 !== 0 || !Number.isInteger(side))
    throw configError(source)('cannot infer the config from the shapes; put the config.json beside the weights');
  return {
    ...CLIP_DEFAULTS,
    hidden,
    heads: hidden / 64,
    intermediate: shape(`${LAYER(0)}.mlp.fc1.weight`)[0] as number,
    layers,
    imageSize: side * patchSize,
    patchSize,
    qkvBias: true,
    projectionDim: shape('visual_projection.weight')[0] as number,
  };
}

function expected(c: ClipVisionConfig): Map<string, number[]> {
  const shapes = towerShapes(c, NAMES);
  addLinearShapes(shapes, `${TOWER}.post_layernorm`, c.hidden, null);
  addLinearShapes(shapes, 'visual_projection', c.projectionDim, c.hidden, false);
  shapes.set('concept_embeds', [CONCEPTS, c.projectionDim]);
  shapes.set('special_care_embeds', [SPECIAL_CONCEPTS, c.projectionDim]);
  shapes.set('concept_embeds_weights', [CONCEPTS]);
  shapes.set('special_care_embeds_weights', [SPECIAL_CONCEPTS]);
  return shapes;
}

export const CLIP_VISION_KIND: SafetyModelKind<ClipVisionConfig> = {
  label: 'safety checker (CLIP vision tower)',
  subfolder: 'safety_checker',
  marker: NAMES.classToken,
  // A legacy buffer (0..T−1) the CompVis file still carries.
  ignored: [`${TOWER}.embeddings.position_ids`],
  fromConfig,
  infer,
  expected,
};

function buildGraph(checkpoint: SafetyCheckpoint<ClipVisionConfig>, device: Device): BuiltModel {
  const c = checkpoint.config;
  const g = new GraphBuilder('safety-clip', { device });
  const weights = storedWeights(g, (name) => checkpoint.locate(name));
  const { embeddings, encoderInput, encoded } = tower(g, c, NAMES, weights);
  const pooled = layerNorm(g, classToken(g, encoded), `${TOWER}.post_layernorm`, c.eps, weights);
  const values = [embeddings, encoderInput, encoded, pooled, linear(g, pooled, 'visual_projection', weights, false)];
  values.forEach((v, i) => g.output(v, CLIP_VISION_OUTPUTS[i]));
  return g.build();
}

const SPEC: VisionModelSpec<ClipVisionConfig> = {
  kind: CLIP_VISION_KIND,
  // Beside the weights, else the pipeline's feature_extractor/ (diffusers layout).
  processorFiles: (folder) => [join(folder, 'preprocessor_config.json'), join(folder, '..', 'feature_extractor', 'preprocessor_config.json')],
  processorDefaults: CLIP_PROCESSOR_DEFAULTS,
  build: buildGraph,
};

async function readConcepts(checkpoint: SafetyCheckpoint<ClipVisionConfig>): Promise<SafetyConcepts> {
  const read = (name: string) => checkpoint.source.readFloat32(name);
  return {
    special: { embeds: await read('special_care_embeds'), thresholds: Array.from(await read('special_care_embeds_weights')) },
    concept: { embeds: await read('concept_embeds'), thresholds: Array.from(await read('concept_embeds_weights')) },
    dim: checkpoint.config.projectionDim,
  };
}

/** The stage-1 model: pixel_values → image_embeds, with the concepts to score them against. */
export class ClipVisionModel extends VisionModel<ClipVisionConfig> {
  private constructor(
    parts: VisionParts<ClipVisionConfig>,
    readonly concepts: SafetyConcepts,
  ) {
    super(parts, 'image_embeds');
  }

  static async load(worker: InferenceWorker, path: string, settings?: SessionSettings): Promise<ClipVisionModel> {
    const parts = await loadVisionParts(worker, path, SPEC, settings);
    return new ClipVisionModel(parts, await readConcepts(parts.checkpoint));
  }
}
