/**
 * The built-in model's safety pair: a tiny stage-1 safety checker and stage-2 classifier in the
 * layouts the real ones ship in (a diffusers `safety_checker/` folder with F16 weights, the legacy
 * `position_ids` buffer and the pipeline's `feature_extractor/`; an HF ViT folder with F32
 * weights, id2label and its preprocessor config). Their weights are not random but built so
 * that what they flag is known:
 *
 * - Stage 1 flags an image when at least 11 of its 16 patches (4×4 grid of the 32×32 CLIP
 *   input) are "red": patch mean of R − (G + B)/2 in CLIP-normalized units above 0.6. Solid
 *   red (255, 0, 0) scores 3.5, solid magenta (255, 0, 255) 1.7, the demo world's magenta
 *   background (230, 30, 230) 1.3 and the built-in model's drawing of it (about 215, 40, 232)
 *   0.95; grey, white and black (the world's other backgrounds) are below 0, and a red, orange or
 *   pink object (0.85–2.5) never covers 11 patches.
 * - Stage 2 says "nsfw" when more than half of its 16 patches are "purple" (patch mean of B − G
 *   above 0.25 of the full range, i.e. 64 levels), else "normal": white, grey and black (B = G)
 *   and red are normal. So red is flagged by stage 1 and kept by stage 2; magenta is dropped: a magenta background is the demo world's "unsafe" concept (src/demo-world/), so the
 *   built-in model's ordinary pictures pass and a prompt "… on a magenta background" exercises
 *   the whole safety path.
 *
 * How: each patch embeds as (m − τ)·(e₀ − e₁), which the LayerNorm before attention turns into
 * ±(e₀ − e₁): the sign of m − τ for m the patch feature, τ the threshold (carried by the position
 * embeddings). Queries and keys are zero, so the class token attends uniformly and the output
 * projection adds f·(e₄ − e₅) to it, f = (patches on − patches off)/17; the MLPs are zero. The
 * pooled class token is ∝ (e₂ − e₃) + f·(e₄ − e₅), so image_embeds ∝ (1, f): concept 0 = (0, 1)
 * with threshold 0.25 fires when f/√(1 + f²) > 0.2505, i.e. f ≥ 6/17; the classifier's nsfw
 * logit is a positive multiple of f (a tie at f = 0 goes to index 0, "normal"). The other
 * concepts and the special-care concepts point at (−1, 0) and never fire.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLIP_VISION_KIND } from '../models/safety/clip-vision.js';
import { VIT_CLASSIFIER_KIND } from '../models/safety/vit-classifier.js';
import type { SafetyPaths } from '../pipeline/safety-checker.js';
import { f32ToF16 } from '../weights/dtypes.js';
import { writeSafetensors, type TensorToWrite } from '../weights/safetensors-writer.js';

const HIDDEN = 16;
const PATCH = 8;
const IMAGE = 32;
const PATCHES = (IMAGE / PATCH) ** 2;
const PROJECTION = 8;

/** One tiny tower shape for both stages: 16 wide, 2 heads, 1 layer, 8-pixel patches of a 32-pixel input. */
const TOWER = {
  hidden_size: HIDDEN,
  intermediate_size: 32,
  num_attention_heads: 2,
  num_hidden_layers: 1,
  patch_size: PATCH,
  image_size: IMAGE,
  num_channels: 3,
};
const CHECKER_CONFIG = {
  architectures: ['StableDiffusionSafetyChecker'],
  model_type: 'clip',
  projection_dim: PROJECTION,
  torch_dtype: 'float16',
  vision_config: { model_type: 'clip_vision_model', ...TOWER, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5 },
};
const FEATURE_EXTRACTOR = {
  crop_size: IMAGE,
  do_center_crop: true,
  do_convert_rgb: true,
  do_normalize: true,
  do_resize: true,
  do_rescale: true,
  rescale_factor: 1 / 255,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  resample: 3,
  size: IMAGE,
  feature_extractor_type: 'CLIPFeatureExtractor',
};
const CLASSIFIER_CONFIG = {
  architectures: ['ViTForImageClassification'],
  model_type: 'vit',
  ...TOWER,
  hidden_act: 'gelu',
  layer_norm_eps: 1e-12,
  qkv_bias: true,
  id2label: { 0: 'normal', 1: 'nsfw' },
  label2id: { normal: 0, nsfw: 1 },
  torch_dtype: 'float32',
};
const CLASSIFIER_PROCESSOR = {
  do_normalize: true,
  do_rescale: true,
  do_resize: true,
  image_mean: [0.5, 0.5, 0.5],
  image_processor_type: 'ViTImageProcessor',
  image_std: [0.5, 0.5, 0.5],
  resample: 2,
  rescale_factor: 1 / 255,
  size: { height: IMAGE, width: IMAGE },
};

/** Per-channel patch feature weights and thresholds (normalized units) of each stage. */
const REDNESS = { channels: [1, -0.5, -0.5], threshold: 0.6 };
const PURPLENESS = { channels: [0, -1, 1], threshold: 0.5 };
const CONCEPT_THRESHOLD = 0.25;
const NSFW_GAIN = 4;

/** Sets one element; the index names the trailing axes (leading size-1 axes, as in [1, T, H], are skipped). */
type Setter = (name: string, index: number[], value: number) => void;

/** Zero-filled tensors of the expected shapes, with the structured entries set by `fill`. */
function structured(shapes: Map<string, number[]>, fill: (set: Setter) => void): Map<string, { shape: number[]; data: Float32Array }> {
  const tensors = new Map([...shapes].map(([name, shape]) => [name, { shape, data: new Float32Array(shape.reduce((s, d) => s * d, 1)) }]));
  fill((name, index, value) => {
    const t = tensors.get(name) as { shape: number[]; data: Float32Array };
    const trailing = t.shape.slice(t.shape.length - index.length);
    t.data[index.reduce((o, i, axis) => o * (trailing[axis] as number) + i, 0)] = value;
  });
  return tensors;
}

interface Names {
  patchWeight: string;
  positions: string;
  classToken: string;
  norms: string[];
  v: string;
  out: string;
}

/** The shared mechanism: patch feature on e₀ − e₁ with its threshold in the positions; uniform attention copying it to e₄ − e₅. */
function featureDetector(set: Setter, names: Names, feature: { channels: number[]; threshold: number }): void {
  feature.channels.forEach((w, c) => {
    for (let y = 0; y < PATCH; y++) {
      for (let x = 0; x < PATCH; x++) {
        set(names.patchWeight, [0, c, y, x], w / PATCH ** 2);
        set(names.patchWeight, [1, c, y, x], -w / PATCH ** 2);
      }
    }
  });
  for (let t = 1; t <= PATCHES; t++) {
    set(names.positions, [t, 0], -feature.threshold);
    set(names.positions, [t, 1], feature.threshold);
  }
  set(names.classToken, [2], 1);
  set(names.classToken, [3], -1);
  for (const norm of names.norms) for (let i = 0; i < HIDDEN; i++) set(`${norm}.weight`, [i], 1);
  for (const i of [0, 1]) {
    set(`${names.v}.weight`, [i, i], 1);
    set(`${names.out}.weight`, [4 + i, i], 1);
  }
}

function checkerTensors(): TensorToWrite[] {
  const config = CLIP_VISION_KIND.fromConfig('built-in', CHECKER_CONFIG);
  const tower = 'vision_model.vision_model';
  const layer = `${tower}.encoder.layers.0`;
  const tensors = structured(CLIP_VISION_KIND.expected(config), (set) => {
    featureDetector(
      set,
      {
        patchWeight: `${tower}.embeddings.patch_embedding.weight`,
        positions: `${tower}.embeddings.position_embedding.weight`,
        classToken: `${tower}.embeddings.class_embedding`,
        norms: [`${tower}.pre_layrnorm`, `${layer}.layer_norm1`, `${layer}.layer_norm2`, `${tower}.post_layernorm`],
        v: `${layer}.self_attn.v_proj`,
        out: `${layer}.self_attn.out_proj`,
      },
      REDNESS,
    );
    set('visual_projection.weight', [0, 2], 1);
    set('visual_projection.weight', [1, 4], 1);
    set('concept_embeds', [0, 1], 1);
    for (let k = 1; k < 17; k++) set('concept_embeds', [k, 0], -1);
    for (let k = 0; k < 3; k++) set('special_care_embeds', [k, 0], -1);
    for (let k = 0; k < 17; k++) set('concept_embeds_weights', [k], CONCEPT_THRESHOLD);
    for (let k = 0; k < 3; k++) set('special_care_embeds_weights', [k], CONCEPT_THRESHOLD);
  });
  const tokens = PATCHES + 1;
  return [
    ...[...tensors].map(([name, t]): TensorToWrite => ({ name, dtype: 'F16', shape: t.shape, data: f32ToF16(t.data) })),
    { name: `${tower}.embeddings.position_ids`, dtype: 'I64', shape: [1, tokens], data: BigInt64Array.from({ length: tokens }, (_, i) => BigInt(i)) },
  ];
}

function classifierTensors(): TensorToWrite[] {
  const config = VIT_CLASSIFIER_KIND.fromConfig('built-in', CLASSIFIER_CONFIG);
  const layer = 'vit.encoder.layer.0';
  const tensors = structured(VIT_CLASSIFIER_KIND.expected(config), (set) => {
    featureDetector(
      set,
      {
        patchWeight: 'vit.embeddings.patch_embeddings.projection.weight',
        positions: 'vit.embeddings.position_embeddings',
        classToken: 'vit.embeddings.cls_token',
        norms: [`${layer}.layernorm_before`, `${layer}.layernorm_after`, 'vit.layernorm'],
        v: `${layer}.attention.attention.value`,
        out: `${layer}.attention.output.dense`,
      },
      PURPLENESS,
    );
    set('classifier.weight', [1, 4], NSFW_GAIN);
  });
  return [...tensors].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, data: t.data }));
}

async function writeFolder(folder: string, files: Record<string, object>, weights?: TensorToWrite[]): Promise<string> {
  await mkdir(folder, { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(folder, name), JSON.stringify(content, null, 2));
  if (weights !== undefined) await writeSafetensors(join(folder, 'model.safetensors'), weights, { format: 'pt' });
  return folder;
}

/**
 * Writes the tiny safety pair into `folder` (safety_checker/ and feature_extractor/ as in a
 * diffusers pipeline, nsfw_image_detection/ as the classifier's repository) and returns the
 * paths to give SafetyChecker.load. Deterministic; what it flags is described above.
 */
export async function writeTinySafetyPair(folder: string): Promise<SafetyPaths> {
  await writeFolder(join(folder, 'feature_extractor'), { 'preprocessor_config.json': FEATURE_EXTRACTOR });
  return {
    checker: await writeFolder(join(folder, 'safety_checker'), { 'config.json': CHECKER_CONFIG }, checkerTensors()),
    classifier: await writeFolder(
      join(folder, 'nsfw_image_detection'),
      { 'config.json': CLASSIFIER_CONFIG, 'preprocessor_config.json': CLASSIFIER_PROCESSOR },
      classifierTensors(),
    ),
  };
}
