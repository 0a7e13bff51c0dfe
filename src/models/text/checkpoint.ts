/**
 * Opens a text-encoder checkpoint as users keep it: a diffusers pipeline root (with the
 * model's subfolder), an HF model folder (config.json + safetensors, sharded or not) or a
 * single file (ComfyUI `clip_l.safetensors`, `t5xxl_fp16.safetensors`, …). The config comes
 * from config.json, the file's `config` metadata or the tensor shapes; every tensor is checked.
 */
import { existsSync } from 'node:fs';
import { openTensorSource, type TensorInfo, type TensorSource } from '../../weights/safetensors.js';
import type { TensorData } from '../../onnx/tensor-data.js';
import { CheckpointError, checkpointProblems, modelFolder, readCheckpointConfig } from '../common/checkpoint.js';

export class TextEncoderCheckpointError extends CheckpointError {}

export interface TextEncoderKind<C> {
  /** Human name used in messages ("T5 encoder"). */
  label: string;
  /** The pipeline subfolder that holds this model (text_encoder_2 for T5). */
  subfolder: string;
  /** A key that identifies the model; prefixes seen in the wild are tried in front of it. */
  marker: string;
  prefixes: readonly string[];
  fromConfig(source: string, raw: Record<string, unknown>): C;
  infer(source: string, tensors: TensorSource, prefix: string): C;
  /** Expected tensors (name → shape) and names that may be present but are not required. */
  expected(config: C): { required: Map<string, number[]>; optional: Map<string, number[]> };
}

export interface TextEncoderCheckpoint<C> {
  path: string;
  config: C;
  source: TensorSource;
  prefix: string;
  locate(name: string): TensorInfo;
}

export async function openTextEncoderCheckpoint<C>(path: string, kind: TextEncoderKind<C>): Promise<TextEncoderCheckpoint<C>> {
  if (!existsSync(path)) throw new TextEncoderCheckpointError(path, 'no such file or folder');
  const folder = modelFolder(path, kind.subfolder);
  const source = await openTensorSource(folder ?? path);
  const prefix = kind.prefixes.find((p) => source.has(p + kind.marker));
  if (prefix === undefined) throw new TextEncoderCheckpointError(path, `not a ${kind.label} checkpoint: "${kind.marker}" is missing`);
  const { config } = readCheckpointConfig({
    path,
    folder,
    metadata: source.metadata,
    parse: (from, raw) => kind.fromConfig(from, raw),
    infer: () => kind.infer(path, source, prefix),
    error: TextEncoderCheckpointError,
  });
  const { required, optional } = kind.expected(config);
  const allowed = new Map([...required, ...optional].filter(([k]) => required.has(k) || source.has(prefix + k)));
  const problems = checkpointProblems(source, allowed, prefix);
  if (problems.length > 0) throw new TextEncoderCheckpointError(path, `not a valid ${kind.label} for its config: ${problems.join('; ')}`);
  return {
    path,
    config,
    source,
    prefix,
    locate(name) {
      if (!allowed.has(name)) throw new TextEncoderCheckpointError(path, `no parameter "${name}" in this ${kind.label}`);
      return source.info(prefix + name);
    },
  };
}

export class TextEncoderInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TextEncoderInputError';
  }
}

/** Token ids must be int64 [batch, length ≥ 1] inside the vocabulary. */
export function checkTokenIds(ids: TensorData, vocabSize: number): void {
  if (ids.type !== 'int64' || ids.dims.length !== 2 || (ids.dims[0] as number) < 1 || (ids.dims[1] as number) < 1) {
    throw new TextEncoderInputError(`input "input_ids" must be int64 [batch, length], got ${ids.type} [${ids.dims.join(', ')}]`);
  }
  const bad = (ids.data as BigInt64Array).find((v) => v < 0n || v >= BigInt(vocabSize));
  if (bad !== undefined) throw new TextEncoderInputError(`input "input_ids" holds token ${bad}, outside the vocabulary of ${vocabSize}`);
}
