/**
 * Opens the checkpoints of the two safety models as they ship: a Hugging Face model folder
 * (config.json + model.safetensors; for stage 1 also a diffusers pipeline root holding
 * `safety_checker/`) or a single file. The config comes from config.json (in the folder, or
 * beside the file), the file's `config` metadata, or the tensor shapes. Every tensor is checked;
 * legacy buffers the model does not use (`position_ids`) are tolerated and ignored.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openTensorSource, type TensorInfo, type TensorSource } from '../../weights/safetensors.js';
import { CheckpointError, checkpointProblems, modelFolder, readCheckpointConfig } from '../common/checkpoint.js';

export class SafetyCheckpointError extends CheckpointError {}

export interface SafetyModelKind<C> {
  /** Human name used in messages. */
  label: string;
  /** The subfolder of a pipeline root that holds this model, if any. */
  subfolder: string;
  /** A key that identifies the model. */
  marker: string;
  /** Stored buffers the model does not use; present or not, they are skipped. */
  ignored: readonly string[];
  fromConfig(source: string, raw: Record<string, unknown>): C;
  infer(source: string, tensors: TensorSource): C;
  /** Every tensor the model needs, name → shape. */
  expected(config: C): Map<string, number[]>;
}

export interface SafetyCheckpoint<C> {
  path: string;
  /** The folder the model's files (config.json, preprocessor_config.json) are looked up in. */
  folder: string;
  /** The config.json the config came from, or null when it came from metadata or shapes. */
  configFile: string | null;
  config: C;
  source: TensorSource;
  locate(name: string): TensorInfo;
}

/** The source without the ignored buffers, so the whole-checkpoint check does not see them. */
function withoutIgnored(source: TensorSource, ignored: readonly string[]): TensorSource {
  const skip = new Set(ignored);
  return {
    metadata: source.metadata,
    names: () => source.names().filter((n) => !skip.has(n)),
    has: (name) => !skip.has(name) && source.has(name),
    info: (name) => source.info(name),
    readBytes: (name) => source.readBytes(name),
    readFloat32: (name) => source.readFloat32(name),
    readInt64: (name) => source.readInt64(name),
  };
}

export async function openSafetyCheckpoint<C>(path: string, kind: SafetyModelKind<C>): Promise<SafetyCheckpoint<C>> {
  if (!existsSync(path)) throw new SafetyCheckpointError(path, `no such file or folder (expected the ${kind.label})`);
  const modelDir = modelFolder(path, kind.subfolder);
  // In a folder, transformers' default weights file wins over variants beside it (model.fp16.safetensors).
  const weights = modelDir !== null && existsSync(join(modelDir, 'model.safetensors')) ? join(modelDir, 'model.safetensors') : (modelDir ?? path);
  const source = withoutIgnored(await openTensorSource(weights), kind.ignored);
  if (!source.has(kind.marker)) throw new SafetyCheckpointError(path, `not a ${kind.label} checkpoint: "${kind.marker}" is missing`);
  const folder = modelDir ?? dirname(path);
  const { config, configFile } = readCheckpointConfig({
    path,
    folder,
    metadata: source.metadata,
    parse: (from, raw) => kind.fromConfig(from, raw),
    infer: () => kind.infer(path, source),
    error: SafetyCheckpointError,
  });
  const expected = kind.expected(config);
  const problems = checkpointProblems(source, expected, '');
  if (problems.length > 0) throw new SafetyCheckpointError(path, `not a valid ${kind.label} for its config: ${problems.join('; ')}`);
  return {
    path,
    folder,
    configFile,
    config,
    source,
    locate(name) {
      if (!expected.has(name)) throw new SafetyCheckpointError(path, `no parameter "${name}" in this ${kind.label}`);
      return source.info(name);
    },
  };
}

/** `error(detail)` for a config value, naming where the config came from. */
export function configError(source: string): (detail: string) => SafetyCheckpointError {
  return (detail) => new SafetyCheckpointError(source, `invalid config: ${detail}`);
}
