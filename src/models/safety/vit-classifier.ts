/**
 * Stage 2 of the safety checker: a transformers ViTForImageClassification (Falconsai
 * nsfw_image_detection, ViT-base/16; test/golden/data/safety/README.md §2–3). Patch tokens (conv with
 * bias), pre-LN exact-GELU layers, `vit.layernorm` over the whole sequence, then
 * logits = classifier(x[:, 0]); labels from config.json `id2label`. Its ViTImageProcessor
 * settings come with it.
 */
import type { Device } from '../../onnx/device.js';
import { join } from 'node:path';
import { GraphBuilder, type BuiltModel } from '../../onnx/graph.js';
import type { InferenceWorker } from '../../onnx/runner.js';
import type { SessionSettings } from '../../onnx/session-options.js';
import type { TensorData } from '../../onnx/tensor-data.js';
import { configError, SafetyCheckpointError, type SafetyCheckpoint, type SafetyModelKind } from './checkpoint.js';
import { VIT_PROCESSOR_DEFAULTS } from './processor.js';
import { addLinearShapes, classToken, layerNorm, linear, storedWeights, tower, towerShapes, type TowerConfig, type TowerNames } from './vision-graph.js';
import { loadVisionParts, towerConfig, VisionModel, type VisionModelSpec } from './vision-model.js';

export interface ViTClassifierConfig extends TowerConfig {
  /** Classifier outputs: as many as id2label has entries (transformers' num_labels). */
  labels: number;
  /** Output index → label, as config.json maps them (it may leave indices out). */
  id2label: Map<number, string>;
}

const LAYER = (i: number) => `vit.encoder.layer.${i}`;

const NAMES: TowerNames = {
  patchWeight: 'vit.embeddings.patch_embeddings.projection.weight',
  patchBias: 'vit.embeddings.patch_embeddings.projection.bias',
  classToken: 'vit.embeddings.cls_token',
  positions: 'vit.embeddings.position_embeddings',
  batchedEmbeddings: true,
  preNorm: null,
  layer: (i) => ({
    norm1: `${LAYER(i)}.layernorm_before`,
    q: `${LAYER(i)}.attention.attention.query`,
    k: `${LAYER(i)}.attention.attention.key`,
    v: `${LAYER(i)}.attention.attention.value`,
    out: `${LAYER(i)}.attention.output.dense`,
    norm2: `${LAYER(i)}.layernorm_after`,
    fc1: `${LAYER(i)}.intermediate.dense`,
    fc2: `${LAYER(i)}.output.dense`,
  }),
};

export const VIT_OUTPUTS = ['embeddings', 'last_hidden_state', 'logits'] as const;

/** The label that keeps an image (cog-flux compares with "normal"). */
export const SAFE_LABEL = 'normal';

/** id2label {"0": "normal", …}: integer keys, string labels, and the label that keeps an image. */
function labelMap(source: string, raw: unknown): Map<number, string> {
  const error = configError(source);
  if (raw === undefined) throw error('"id2label" is missing (the classifier\'s labels, e.g. {"0": "normal", "1": "nsfw"})');
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw error('"id2label" must be an object mapping output indices to labels');
  const entries = Object.entries(raw as Record<string, unknown>).map(([k, v]): [number, string] => {
    if (!/^\d+$/.test(k) || typeof v !== 'string') throw error(`"id2label" entry ${JSON.stringify(k)}: ${JSON.stringify(v)} is not index: label`);
    return [Number(k), v];
  });
  if (!entries.some(([, v]) => v === SAFE_LABEL)) throw error(`"id2label" has no "${SAFE_LABEL}" label, so no image could pass`);
  return new Map(entries);
}

/** ViTConfig over its defaults (patch 16, eps 1e-12, exact GELU); `id2label` is required (it decides what passes). */
function fromConfig(source: string, raw: Record<string, unknown>): ViTClassifierConfig {
  const id2label = labelMap(source, raw.id2label);
  return { ...towerConfig(source, raw, { patchSize: 16, eps: 1e-12, activation: 'gelu' }), labels: id2label.size, id2label };
}

function expected(c: ViTClassifierConfig): Map<string, number[]> {
  const shapes = towerShapes(c, NAMES);
  addLinearShapes(shapes, 'vit.layernorm', c.hidden, null);
  addLinearShapes(shapes, 'classifier', c.labels, c.hidden);
  return shapes;
}

export const VIT_CLASSIFIER_KIND: SafetyModelKind<ViTClassifierConfig> = {
  label: 'ViT image classifier',
  subfolder: 'nsfw_image_detection',
  marker: NAMES.classToken,
  ignored: [],
  fromConfig,
  infer(source) {
    throw new SafetyCheckpointError(source, 'the classifier needs its config.json (with "id2label") beside the weights');
  },
  expected,
};

function buildGraph(checkpoint: SafetyCheckpoint<ViTClassifierConfig>, device: Device): BuiltModel {
  const c = checkpoint.config;
  const g = new GraphBuilder('safety-vit', { device });
  const weights = storedWeights(g, (name) => checkpoint.locate(name));
  const { embeddings, encoded } = tower(g, c, NAMES, weights);
  const last = layerNorm(g, encoded, 'vit.layernorm', c.eps, weights);
  const values = [embeddings, last, linear(g, classToken(g, last), 'classifier', weights)];
  values.forEach((v, i) => g.output(v, VIT_OUTPUTS[i]));
  return g.build();
}

const SPEC: VisionModelSpec<ViTClassifierConfig> = {
  kind: VIT_CLASSIFIER_KIND,
  processorFiles: (folder) => [join(folder, 'preprocessor_config.json')],
  processorDefaults: VIT_PROCESSOR_DEFAULTS,
  build: buildGraph,
};

/** The stage-2 model: pixel_values → logits, and the labels they stand for. */
export class ViTClassifier extends VisionModel<ViTClassifierConfig> {
  static async load(worker: InferenceWorker, path: string, settings?: SessionSettings): Promise<ViTClassifier> {
    return new ViTClassifier(await loadVisionParts(worker, path, SPEC, settings), 'logits');
  }

  /** argmax per row, the first index on a tie and the first NaN if any, as torch's argmax. */
  argmax(logits: TensorData): number[] {
    const [n, k] = logits.dims as [number, number];
    return Array.from({ length: n }, (_, i) => {
      const row = (logits.data as Float32Array).subarray(i * k, (i + 1) * k);
      const max = Math.max(...row);
      return Number.isNaN(max) ? row.findIndex(Number.isNaN) : row.indexOf(max);
    });
  }

  /** id2label[index]; an index config.json leaves out is an error, as the reference's KeyError. */
  label(index: number): string {
    const label = this.config.id2label.get(index);
    if (label === undefined) {
      const known = [...this.config.id2label].map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ');
      throw new SafetyCheckpointError(
        this.checkpoint.configFile ?? this.checkpoint.path,
        `the classifier predicted output ${index}, which "id2label" does not name (it maps ${known})`,
      );
    }
    return label;
  }
}
