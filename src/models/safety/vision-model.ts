/**
 * What the two safety models share once loaded: the checkpoint, the image processor saved with
 * it and the session in the inference worker, plus reading the tower part of their transformers
 * configs (CLIPVisionConfig and ViTConfig have the same keys and defaults but for patch size,
 * LayerNorm eps and activation).
 */
import type { Device } from '../../onnx/device.js';
import { existsSync } from 'node:fs';
import type { RgbImage } from '../../images/decode.js';
import type { BuiltModel } from '../../onnx/graph.js';
import type { InferenceWorker, RemoteSession } from '../../onnx/runner.js';
import type { SessionSettings } from '../../onnx/session-options.js';
import type { TensorData, TensorMap } from '../../onnx/tensor-data.js';
import { positiveInt } from '../common/checkpoint.js';
import { configError, openSafetyCheckpoint, type SafetyCheckpoint, type SafetyModelKind } from './checkpoint.js';
import { ImageProcessor, type ProcessorConfig } from './processor.js';
import type { TowerConfig } from './vision-graph.js';

/** The tower's config over the class defaults; `raw` is the (vision) config object. */
export function towerConfig(source: string, raw: Record<string, unknown>, defaults: Pick<TowerConfig, 'patchSize' | 'eps' | 'activation'>): TowerConfig {
  const error = configError(source);
  const int = (key: string, fallback: number) => positiveInt(error, raw, key, fallback);
  if (int('num_channels', 3) !== 3) throw error('num_channels must be 3 (RGB)');
  const eps = raw.layer_norm_eps ?? defaults.eps;
  if (typeof eps !== 'number' || !(eps > 0)) throw error(`"layer_norm_eps" must be a positive number, got ${JSON.stringify(eps)}`);
  const activation = raw.hidden_act ?? defaults.activation;
  if (activation !== 'quick_gelu' && activation !== 'gelu') throw error(`hidden_act ${JSON.stringify(activation)} is not supported (quick_gelu or gelu)`);
  const c: TowerConfig = {
    hidden: int('hidden_size', 768),
    heads: int('num_attention_heads', 12),
    intermediate: int('intermediate_size', 3072),
    layers: int('num_hidden_layers', 12),
    imageSize: int('image_size', 224),
    patchSize: int('patch_size', defaults.patchSize),
    eps,
    activation,
    qkvBias: raw.qkv_bias !== false,
  };
  if (c.hidden % c.heads !== 0) throw error(`hidden_size ${c.hidden} is not divisible by ${c.heads} heads`);
  if (c.imageSize % c.patchSize !== 0) throw error(`image_size ${c.imageSize} is not a multiple of patch_size ${c.patchSize}`);
  return c;
}

export interface VisionParts<C> {
  checkpoint: SafetyCheckpoint<C>;
  processor: ImageProcessor;
  session: RemoteSession;
}

export interface VisionModelSpec<C> {
  kind: SafetyModelKind<C>;
  /** Where its preprocessor_config.json may be, first found wins; none means the defaults. */
  processorFiles(folder: string): string[];
  processorDefaults: ProcessorConfig;
  build(checkpoint: SafetyCheckpoint<C>, device: Device): BuiltModel;
}

/** Opens and checks the checkpoint, reads its processor (which must make the model's input size) and creates the session. */
export async function loadVisionParts<C extends TowerConfig>(
  worker: InferenceWorker,
  path: string,
  spec: VisionModelSpec<C>,
  settings?: SessionSettings,
): Promise<VisionParts<C>> {
  const checkpoint = await openSafetyCheckpoint(path, spec.kind);
  const file = spec.processorFiles(checkpoint.folder).find((f) => existsSync(f)) ?? null;
  const processor = ImageProcessor.load(file, spec.processorDefaults, checkpoint.config.imageSize, checkpoint.folder);
  return { checkpoint, processor, session: await worker.load(spec.build(checkpoint, settings?.device ?? 'cpu'), settings) };
}

/** A loaded model: pixel_values → its main output (and the golden intermediates on request). */
export class VisionModel<C extends TowerConfig> {
  readonly checkpoint: SafetyCheckpoint<C>;
  readonly processor: ImageProcessor;
  private readonly session: RemoteSession;

  protected constructor(
    parts: VisionParts<C>,
    private readonly mainOutput: string,
  ) {
    ({ checkpoint: this.checkpoint, processor: this.processor, session: this.session } = parts);
  }

  get config(): C {
    return this.checkpoint.config;
  }

  /** The images through this model's processor, as one batch. */
  preprocess(images: readonly { image: RgbImage; index: number }[]): TensorData {
    return this.processor.batch(images);
  }

  /** pixel_values [B, 3, S, S] → the main output, with every output when `intermediates` is set. */
  async run(pixels: TensorData, options: { intermediates?: boolean; signal?: AbortSignal } = {}): Promise<TensorMap> {
    this.processor.checkPixels(pixels);
    return this.session.run({ pixel_values: pixels }, { signal: options.signal, ...(options.intermediates ? {} : { outputs: [this.mainOutput] }) });
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
