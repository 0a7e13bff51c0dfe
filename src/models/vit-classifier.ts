/**
 * Stage 2 of the safety checker: a transformers ViTForImageClassification (Falconsai
 * nsfw_image_detection, ViT-base/16; golden/safety/README.md §2–3). Patch tokens (conv with
 * bias), pre-LN exact-GELU layers, `vit.layernorm` over the whole sequence, then
 * logits = classifier(x[:, 0]); labels from config.json `id2label`. Its ViTImageProcessor
 * settings come with it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RgbImage } from '../images/decode.js';
import { GraphBuilder, type BuiltModel } from '../onnx/graph.js';
import * as op from '../onnx/ops/index.js';
import type { InferenceWorker, RemoteSession } from '../onnx/runner.js';
import type { SessionSettings } from '../onnx/session-options.js';
import type { TensorData, TensorMap } from '../onnx/tensor-data.js';
import { activation, configError, openSafetyCheckpoint, positiveNumber, SafetyCheckpointError, type SafetyCheckpoint, type SafetyModelKind } from '../safety/checkpoint.js';
import { ImageProcessor, VIT_PROCESSOR_DEFAULTS } from '../safety/processor.js';
import { encoder, layerNorm, linear, patchTokens, storedWeights, type EncoderLayer } from '../safety/vision-graph.js';
import { positiveInt } from './text/checkpoint.js';

export interface ViTClassifierConfig {
  hidden: number;
  heads: number;
  intermediate: number;
  layers: number;
  imageSize: number;
  patchSize: number;
  eps: number;
  activation: 'gelu' | 'quick_gelu';
  qkvBias: boolean;
  /** Classifier outputs: as many as id2label has entries (transformers' num_labels). */
  labels: number;
  /** Output index → label, as config.json maps them (it may leave indices out). */
  id2label: Map<number, string>;
}

const LAYER = (i: number) => `vit.encoder.layer.${i}`;

export const VIT_OUTPUTS = ['embeddings', 'last_hidden_state', 'logits'] as const;

/** The label that keeps an image (cog-flux compares with "normal"). */
export const SAFE_LABEL = 'normal';

function layerNames(i: number): EncoderLayer {
  const l = LAYER(i);
  return {
    norm1: `${l}.layernorm_before`,
    q: `${l}.attention.attention.query`,
    k: `${l}.attention.attention.key`,
    v: `${l}.attention.attention.value`,
    out: `${l}.attention.output.dense`,
    norm2: `${l}.layernorm_after`,
    fc1: `${l}.intermediate.dense`,
    fc2: `${l}.output.dense`,
  };
}

function tokens(c: ViTClassifierConfig): number {
  return (c.imageSize / c.patchSize) ** 2 + 1;
}

/** id2label {"0": "normal", …}: integer keys, string labels, and the label that keeps an image. */
function labelMap(source: string, raw: unknown): Map<number, string> {
  const error = configError(source);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw error('"id2label" must be an object mapping output indices to labels');
  const entries = Object.entries(raw as Record<string, unknown>).map(([k, v]): [number, string] => {
    if (!/^\d+$/.test(k) || typeof v !== 'string') throw error(`"id2label" entry ${JSON.stringify(k)}: ${JSON.stringify(v)} is not index: label`);
    return [Number(k), v];
  });
  if (!entries.some(([, v]) => v === SAFE_LABEL)) throw error(`"id2label" has no "${SAFE_LABEL}" label, so no image could pass`);
  return new Map(entries);
}

/** ViTConfig over its defaults; `id2label` is required (it decides what passes). */
function fromConfig(source: string, raw: Record<string, unknown>): ViTClassifierConfig {
  const error = configError(source);
  const int = (key: string, fallback: number) => positiveInt(error, raw, key, fallback);
  if (int('num_channels', 3) !== 3) throw error('num_channels must be 3 (RGB)');
  if (raw.id2label === undefined) throw error('"id2label" is missing (the classifier\'s labels, e.g. {"0": "normal", "1": "nsfw"})');
  const id2label = labelMap(source, raw.id2label);
  const c: ViTClassifierConfig = {
    hidden: int('hidden_size', 768),
    heads: int('num_attention_heads', 12),
    intermediate: int('intermediate_size', 3072),
    layers: int('num_hidden_layers', 12),
    imageSize: int('image_size', 224),
    patchSize: int('patch_size', 16),
    eps: positiveNumber(source, raw, 'layer_norm_eps', 1e-12),
    activation: activation(source, raw, 'gelu', ['gelu', 'quick_gelu']),
    qkvBias: raw.qkv_bias !== false,
    labels: id2label.size,
    id2label,
  };
  if (c.hidden % c.heads !== 0) throw error(`hidden_size ${c.hidden} is not divisible by ${c.heads} heads`);
  if (c.imageSize % c.patchSize !== 0) throw error(`image_size ${c.imageSize} is not a multiple of patch_size ${c.patchSize}`);
  return c;
}

function expected(c: ViTClassifierConfig): Map<string, number[]> {
  const h = c.hidden;
  const shapes = new Map<string, number[]>([
    ['vit.embeddings.cls_token', [1, 1, h]],
    ['vit.embeddings.position_embeddings', [1, tokens(c), h]],
    ['vit.embeddings.patch_embeddings.projection.weight', [h, 3, c.patchSize, c.patchSize]],
    ['vit.embeddings.patch_embeddings.projection.bias', [h]],
    ['vit.layernorm.weight', [h]],
    ['vit.layernorm.bias', [h]],
    ['classifier.weight', [c.labels, h]],
    ['classifier.bias', [c.labels]],
  ]);
  const linearShapes = (module: string, out: number, inp: number, bias = true) => {
    shapes.set(`${module}.weight`, [out, inp]);
    if (bias) shapes.set(`${module}.bias`, [out]);
  };
  for (let i = 0; i < c.layers; i++) {
    const l = layerNames(i);
    for (const n of [l.norm1, l.norm2]) for (const p of ['weight', 'bias']) shapes.set(`${n}.${p}`, [h]);
    for (const m of [l.q, l.k, l.v]) linearShapes(m, h, h, c.qkvBias);
    linearShapes(l.out, h, h);
    linearShapes(l.fc1, c.intermediate, h);
    linearShapes(l.fc2, h, c.intermediate);
  }
  return shapes;
}

export const VIT_CLASSIFIER_KIND: SafetyModelKind<ViTClassifierConfig> = {
  label: 'ViT image classifier',
  subfolder: 'nsfw_image_detection',
  marker: 'vit.embeddings.cls_token',
  ignored: [],
  fromConfig,
  infer(source) {
    throw new SafetyCheckpointError(source, 'the classifier needs its config.json (with "id2label") beside the weights');
  },
  expected,
};

function buildGraph(checkpoint: SafetyCheckpoint<ViTClassifierConfig>): BuiltModel {
  const c = checkpoint.config;
  const g = new GraphBuilder('safety-vit');
  const weights = storedWeights(g, (name) => checkpoint.locate(name));
  const pixels = g.input('pixel_values', 'float32', ['batch', 3, c.imageSize, c.imageSize]);
  const embeddings = patchTokens(
    g,
    pixels,
    {
      patch: c.patchSize,
      hidden: c.hidden,
      tokens: tokens(c),
      weight: 'vit.embeddings.patch_embeddings.projection.weight',
      bias: 'vit.embeddings.patch_embeddings.projection.bias',
      classToken: 'vit.embeddings.cls_token',
      positions: 'vit.embeddings.position_embeddings',
    },
    weights,
  );
  const layers = Array.from({ length: c.layers }, (_, i) => layerNames(i));
  const encoded = encoder(g, embeddings, { heads: c.heads, eps: c.eps, activation: c.activation, qkvBias: c.qkvBias, layers }, weights);
  const last = layerNorm(g, encoded, 'vit.layernorm', c.eps, weights);
  const cls = op.squeeze(g, op.slice(g, last, { starts: [0], ends: [1], axes: [1] }), [1]);
  const values = [embeddings, last, linear(g, cls, 'classifier', weights)];
  values.forEach((v, i) => g.output(v, VIT_OUTPUTS[i]));
  return g.build();
}

export class ViTClassifier {
  private constructor(
    readonly checkpoint: SafetyCheckpoint<ViTClassifierConfig>,
    readonly processor: ImageProcessor,
    private readonly session: RemoteSession,
  ) {}

  get config(): ViTClassifierConfig {
    return this.checkpoint.config;
  }

  static async load(worker: InferenceWorker, path: string, settings?: SessionSettings): Promise<ViTClassifier> {
    const checkpoint = await openSafetyCheckpoint(path, VIT_CLASSIFIER_KIND);
    const file = join(checkpoint.folder, 'preprocessor_config.json');
    const processor = ImageProcessor.load(existsSync(file) ? file : null, VIT_PROCESSOR_DEFAULTS, checkpoint.config.imageSize, checkpoint.folder);
    return new ViTClassifier(checkpoint, processor, await worker.load(buildGraph(checkpoint), settings));
  }

  preprocess(images: readonly { image: RgbImage; index: number }[]): TensorData {
    return this.processor.batch(images);
  }

  /** pixel_values [B, 3, S, S] → logits [B, labels], with the golden intermediates when asked for. */
  async run(pixels: TensorData, options: { intermediates?: boolean; signal?: AbortSignal } = {}): Promise<TensorMap> {
    this.processor.checkPixels(pixels);
    return this.session.run({ pixel_values: pixels }, { signal: options.signal, ...(options.intermediates ? {} : { outputs: ['logits'] }) });
  }

  /** argmax per row; on a tie the first index wins, as torch's argmax. */
  argmax(logits: TensorData): number[] {
    const [n, k] = logits.dims as [number, number];
    const data = logits.data as Float32Array;
    return Array.from({ length: n }, (_, i) => {
      let best = 0;
      for (let j = 1; j < k; j++) if ((data[i * k + j] as number) > (data[i * k + best] as number)) best = j;
      return best;
    });
  }

  /** id2label[index]; an index config.json leaves out is an error, as the reference's KeyError. */
  label(index: number): string {
    const label = this.config.id2label.get(index);
    if (label === undefined) {
      const known = [...this.config.id2label].map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ');
      throw new SafetyCheckpointError(this.checkpoint.configFile ?? this.checkpoint.path, `the classifier predicted output ${index}, which "id2label" does not name (it maps ${known})`);
    }
    return label;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
