/**
 * What the LoRA cache may do, read once from its options: the hosts it talks to, the tokens it
 * sends, the network limits of every request, and the rules for local paths and built-in LoRAs.
 */
import { existsSync, readdirSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { readEnvironment } from '../config.js';
import { DEFAULT_IDLE_TIMEOUT_MS, type SafeFetchOptions } from '../net/safe-fetch.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import { invalidSafetensorsDetail } from './source-errors.js';
import { DEFAULT_LORA_HOSTS, describeSource, LoraSourceError, type LoraHosts } from './sources.js';

/** The cache's options with every default filled in. */
export interface LoraCacheOptions {
  /** Cache folder (created if missing). */
  dir: string;
  /** Total size cap in bytes, default 20 GiB; least recently used entries are evicted past it. */
  maxBytes?: number;
  /** Base URLs of the LoRA hosts (tests point these at local fake hosts). */
  hosts?: Partial<LoraHosts>;
  /** API tokens; each defaults to its environment variable (see src/config.ts). */
  tokens?: { replicate?: string; huggingface?: string; civitai?: string };
  /** Allow loopback/private/link-local addresses (tests), default false. */
  allowPrivateNetworks?: boolean;
  /** The folder local paths must lie in; null/undefined refuses local paths. */
  localRoot?: string | null;
  /** The folder of the built-in model's LoRAs (`builtin:<name>` is `<name>.safetensors` there); null/undefined: none. */
  builtinRoot?: string | null;
  /** Largest download accepted, default 8 GiB. */
  maxDownloadBytes?: number;
  /** Time cap per download, default 10 minutes. */
  timeoutMs?: number;
  /** A download that receives no byte for this long fails (a stalled host), default 30 s. */
  idleTimeoutMs?: number;
  /** Progress lines; never given token values. */
  log?: (line: string) => void;
}

export interface CacheSettings {
  dir: string;
  maxBytes: number;
  hosts: LoraHosts;
  tokens: NonNullable<LoraCacheOptions['tokens']>;
  allowPrivateNetworks: boolean;
  localRoot: string | null;
  builtinRoot: string | null;
  maxDownloadBytes: number;
  timeoutMs: number;
  idleTimeoutMs: number;
  log: (line: string) => void;
}

const GiB = 2 ** 30;
export const DEFAULT_LORA_TIMEOUT_MS = 10 * 60_000;

export function cacheSettings(options: LoraCacheOptions): CacheSettings {
  const fromEnvironment = readEnvironment().loraTokens;
  return {
    dir: resolve(options.dir),
    maxBytes: options.maxBytes ?? 20 * GiB,
    hosts: { ...DEFAULT_LORA_HOSTS, ...options.hosts },
    tokens: {
      replicate: options.tokens?.replicate ?? fromEnvironment.replicate,
      huggingface: options.tokens?.huggingface ?? fromEnvironment.huggingface,
      civitai: options.tokens?.civitai ?? fromEnvironment.civitai,
    },
    allowPrivateNetworks: options.allowPrivateNetworks ?? false,
    localRoot: options.localRoot ?? null,
    builtinRoot: options.builtinRoot ?? null,
    maxDownloadBytes: options.maxDownloadBytes ?? 8 * GiB,
    timeoutMs: options.timeoutMs ?? DEFAULT_LORA_TIMEOUT_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    log: options.log ?? (() => undefined),
  };
}

/** The request headers that send `token`, if any. */
export function bearer(token: string | undefined): Record<string, string> {
  return token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` };
}

/** The URL without a `token` query parameter (cache keys never hold secrets). */
export function withoutToken(url: string): string {
  const u = new URL(url);
  u.searchParams.delete('token');
  return u.href;
}

/** The options of one request under the cache's network rules. */
export function fetchOptions(
  settings: CacheSettings,
  maxBytes: number,
  headers: Record<string, string>,
  signal: AbortSignal | undefined,
  timeoutMs = settings.timeoutMs,
): SafeFetchOptions {
  return {
    allowPrivateNetworks: settings.allowPrivateNetworks,
    maxBytes,
    timeoutMs,
    idleTimeoutMs: settings.idleTimeoutMs,
    headers,
    ...(signal === undefined ? {} : { signal }),
  };
}

/**
 * The real path of the local file `path` given as `value` for input `input`, if the operator's
 * LoRA folder allows it: it must lie inside that folder (links included) and be valid safetensors.
 */
export async function allowedLocalFile(localRoot: string | null, input: string, value: string, path: string): Promise<string> {
  const fail = (detail: string): never => {
    throw new LoraSourceError(input, `${describeSource(value)}: ${detail}`);
  };
  if (localRoot === null) return fail('local paths are not allowed on this server (the operator has not set a LoRA folder)');
  const root = resolve(localRoot);
  const inside = (base: string, target: string): boolean => {
    const rel = relative(base, target);
    return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
  };
  const candidate = resolve(root, path);
  if (!inside(root, candidate)) return fail("local paths must lie inside the server's LoRA folder");
  let real: string;
  let realRoot: string;
  try {
    realRoot = await realpath(root);
    real = await realpath(candidate);
  } catch {
    return fail("no such file in the server's LoRA folder");
  }
  if (!inside(realRoot, real)) return fail("local paths must lie inside the server's LoRA folder (this one links outside it)");
  try {
    await SafetensorsFile.open(real);
  } catch (error) {
    return fail(`is ${invalidSafetensorsDetail(error)}`);
  }
  return real;
}

/** The shipped file of LoRA `builtin:<name>`, given as `value` for input `input`. */
export function builtinLoraFile(builtinRoot: string | null, input: string, value: string, name: string): string {
  if (builtinRoot === null) throw new LoraSourceError(input, `${value}: built-in LoRAs come with the built-in demo model, which this server does not run`);
  const known = existsSync(builtinRoot) ? readdirSync(builtinRoot).filter((f) => f.endsWith('.safetensors')) : [];
  const file = `${name}.safetensors`;
  if (!known.includes(file)) {
    throw new LoraSourceError(
      input,
      `${value}: no such built-in LoRA (known: ${known.map((f) => `builtin:${f.replace(/\.safetensors$/, '')}`).join(', ') || 'none'})`,
    );
  }
  return join(builtinRoot, file);
}
