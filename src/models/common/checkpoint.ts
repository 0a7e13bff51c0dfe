/** Checks shared by the model loaders: folder resolution, layout detection by marker keys, config reading, whole-checkpoint validation. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TensorSource } from '../../weights/safetensors.js';

/** A checkpoint that cannot be used, with the file or folder it came from; subclasses name the model. */
export class CheckpointError extends Error {
  constructor(source: string, detail: string) {
    super(`${source}: ${detail}`);
    this.name = new.target.name;
  }
}

/**
 * The folder to read for a model given a path: null for a file; for a folder, its
 * `subfolder` when present (a diffusers pipeline root), else the folder itself.
 */
export function modelFolder(path: string, subfolder: string): string | null {
  if (!statSync(path, { throwIfNoEntry: false })?.isDirectory()) return null;
  const sub = join(path, subfolder);
  return existsSync(sub) && statSync(sub).isDirectory() ? sub : path;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2']);
const MAX_LISTED = 8;

function listed(items: string[]): string {
  const shown = items.slice(0, MAX_LISTED).join(', ');
  return items.length > MAX_LISTED ? `${shown} and ${items.length - MAX_LISTED} more` : shown;
}

/** The first (layout, prefix) whose marker key is present, or null. */
export function detectByMarker<L extends string>(
  source: TensorSource,
  markers: Record<L, string>,
  prefixes: readonly string[],
): { layout: L; prefix: string } | null {
  for (const layout of Object.keys(markers) as L[]) {
    for (const prefix of prefixes) {
      if (source.has(prefix + markers[layout])) return { layout, prefix };
    }
  }
  return null;
}

/** Where a config came from: the folder's config.json or the safetensors file's `config` metadata. */
export type ConfigOrigin = 'config.json' | 'metadata';

export interface CheckpointConfigSources<C> {
  /** The file or folder the checkpoint was opened from; names a config from metadata or shapes in messages. */
  path: string;
  /** The folder whose config.json counts, or null when none does. */
  folder: string | null;
  /** The opened file's metadata; its `config` entry, when present, is a JSON config. */
  metadata: Readonly<Record<string, string>>;
  /** The model's config from parsed JSON; `source` names where it came from in messages. */
  parse(source: string, raw: Record<string, unknown>, origin: ConfigOrigin): C;
  /** The config inferred from the tensor shapes, used when there is no JSON config. */
  infer(): C;
  /** The loader's error class, for a config that cannot be read or is not a JSON object. */
  error: new (source: string, detail: string) => Error;
}

function jsonObject(source: string, what: string, text: string, error: CheckpointConfigSources<unknown>['error']): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new error(source, `${what} is not valid JSON: ${(cause as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new error(source, `${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * A checkpoint's config, first found wins: `folder`/config.json, the file's `config` metadata,
 * the tensor shapes. Returns it with the config.json it came from (null for metadata or shapes).
 */
export function readCheckpointConfig<C>(sources: CheckpointConfigSources<C>): { config: C; configFile: string | null } {
  const { path, folder, metadata, parse, infer, error } = sources;
  const configFile = folder === null ? null : join(folder, 'config.json');
  if (configFile !== null && existsSync(configFile)) {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (cause) {
      throw new error(configFile, `cannot read config: ${(cause as Error).message}`);
    }
    return { config: parse(configFile, jsonObject(configFile, 'config', text, error), 'config.json'), configFile };
  }
  if (metadata.config !== undefined)
    return { config: parse(path, jsonObject(path, 'the "config" metadata', metadata.config, error), 'metadata'), configFile: null };
  return { config: infer(), configFile: null };
}

/**
 * Every expected key present with its shape and a float dtype, and no unexpected key under
 * `prefix` (keys outside the prefix belong to other components of a combined checkpoint).
 * Returns the problems found, each naming the first offending keys.
 */
export function checkpointProblems(source: TensorSource, expected: ReadonlyMap<string, readonly number[]>, prefix: string): string[] {
  const problems: string[] = [];
  const missing = [...expected.keys()].filter((k) => !source.has(prefix + k));
  if (missing.length > 0) problems.push(`missing ${missing.length} tensor(s): ${listed(missing.map((k) => `"${prefix + k}"`))}`);
  const extra = source.names().filter((k) => k.startsWith(prefix) && !expected.has(k.slice(prefix.length)));
  if (extra.length > 0) problems.push(`unexpected ${extra.length} tensor(s): ${listed(extra.map((k) => `"${k}"`))}`);
  const present = [...expected].filter(([k]) => source.has(prefix + k));
  const misShaped = present.filter(([k, s]) => source.info(prefix + k).shape.join(',') !== s.join(','));
  if (misShaped.length > 0) {
    problems.push(
      `wrong shape for ${misShaped.length} tensor(s): ${listed(misShaped.map(([k, s]) => `"${prefix + k}" is [${source.info(prefix + k).shape}], expected [${s}]`))}`,
    );
  }
  // Integer buffers saved beside the weights (transformers' `position_ids`) are not parameters.
  const badType = present.filter(([k]) => !FLOAT_DTYPES.has(source.info(prefix + k).dtype) && !k.endsWith('position_ids'));
  if (badType.length > 0) problems.push(`non-float tensor(s): ${listed(badType.map(([k]) => `"${prefix + k}" (${source.info(prefix + k).dtype})`))}`);
  return problems;
}

export function positiveInt(error: (detail: string) => Error, raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw error(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}
