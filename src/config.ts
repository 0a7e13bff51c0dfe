/**
 * Every environment variable flux-lora reads, read here and nowhere else, with one rule: an
 * empty value counts as unset. Also the default cache folder and the environment of the
 * processes and threads flux-lora starts (onnxruntime's telemetry off unless the operator allows it).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export type Environment = Readonly<Record<string, string | undefined>>;

export interface EnvironmentSettings {
  /** FLUX_MODEL_DIR: FLUX.1 weights (absent: the built-in model). */
  modelDir?: string;
  /** FLUX_LORA_CACHE_DIR: quantized weights, LoRA downloads and the built-in model (default ~/.cache/flux-lora). */
  cacheDir: string;
  /** FLUX_LORA_DATA_DIR: the server's predictions and outputs (default $XDG_DATA_HOME/flux-lora, else ~/.local/share/flux-lora). */
  dataDir: string;
  /** FLUX_LORA_REDIS_URL: the Redis of a scaled deployment (serve --redis, worker --redis). */
  redisUrl?: string;
  /** FLUX_LORA_DIR: the folder local LoRA paths may point into. */
  loraDir?: string;
  /** FLUX_SAFETY_CHECKER and FLUX_SAFETY_CLASSIFIER: the safety pair's folders. */
  safetyChecker?: string;
  safetyClassifier?: string;
  /** FLUX_DEVICE: where the models run (auto, webgpu, cpu, or per component: webgpu,t5=cpu; src/onnx/device-plan.ts). */
  device?: string;
  /** FLUX_LORA_API_TOKEN: the bearer token the server requires. */
  apiToken?: string;
  /** PORT: the server's port. */
  port?: string;
  /** WEBHOOK_AUTH_TOKEN: sent with webhook deliveries. */
  webhookToken?: string;
  /** Tokens for LoRA hosts: REPLICATE_API_TOKEN, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), CIVITAI_TOKEN. */
  loraTokens: { replicate?: string; huggingface?: string; civitai?: string };
}

/** The first of the named variables that is set and not empty. */
function variable(env: Environment, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

export function defaultCacheDir(env: Environment = process.env): string {
  return variable(env, 'FLUX_LORA_CACHE_DIR') ?? join(homedir(), '.cache', 'flux-lora');
}

function defaultDataDir(env: Environment): string {
  return join(variable(env, 'XDG_DATA_HOME') ?? join(homedir(), '.local', 'share'), 'flux-lora');
}

export function readEnvironment(env: Environment = process.env): EnvironmentSettings {
  return {
    modelDir: variable(env, 'FLUX_MODEL_DIR'),
    cacheDir: defaultCacheDir(env),
    dataDir: variable(env, 'FLUX_LORA_DATA_DIR') ?? defaultDataDir(env),
    loraDir: variable(env, 'FLUX_LORA_DIR'),
    redisUrl: variable(env, 'FLUX_LORA_REDIS_URL'),
    safetyChecker: variable(env, 'FLUX_SAFETY_CHECKER'),
    safetyClassifier: variable(env, 'FLUX_SAFETY_CLASSIFIER'),
    device: variable(env, 'FLUX_DEVICE'),
    apiToken: variable(env, 'FLUX_LORA_API_TOKEN'),
    port: variable(env, 'PORT'),
    webhookToken: variable(env, 'WEBHOOK_AUTH_TOKEN'),
    loraTokens: {
      replicate: variable(env, 'REPLICATE_API_TOKEN'),
      huggingface: variable(env, 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN'),
      civitai: variable(env, 'CIVITAI_TOKEN'),
    },
  };
}

/** FLUX_LORA_ONNXRUNTIME_TELEMETRY=1: the operator lets onnxruntime's own telemetry run (it is off otherwise). */
export function engineTelemetryAllowed(env: Environment = process.env): boolean {
  return variable(env, 'FLUX_LORA_ONNXRUNTIME_TELEMETRY') === '1';
}

/**
 * Turns onnxruntime's telemetry off for this process and everything it starts, unless the
 * operator allowed it. onnxruntime-node's native code reads `ORT_DISABLE_TELEMETRY` with
 * getenv() when the library loads, so it must be in the real process environment by then:
 * only the main thread's `process.env` writes through to it (a Worker's `env` option does not).
 * Called by every entry point before onnxruntime-node can load (docs/onnxruntime.md).
 */
export function disableEngineTelemetry(env: Record<string, string | undefined> = process.env): void {
  if (!engineTelemetryAllowed(env)) env.ORT_DISABLE_TELEMETRY = '1';
}

const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/**
 * The engine process's environment: this one, with glibc's malloc asked to back its memory with
 * transparent huge pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, glibc ≥ 2.35; other C libraries
 * and older glibc ignore it; an operator's own `glibc.malloc.hugetlb` setting is kept). Without it a
 * session's first run page-faults every fresh activation buffer 4 KiB at a time: the real VAE's first
 * 512² decode (no memory arena) took 1.6× the CPU time of a warm one, with it 1.05× (docs/onnxruntime.md §10).
 */
export function engineEnvironment(env: Environment = process.env): Record<string, string | undefined> {
  const tunables = env.GLIBC_TUNABLES ?? '';
  if (/(^|:)glibc\.malloc\.hugetlb=/.test(tunables)) return { ...env };
  return { ...env, GLIBC_TUNABLES: tunables === '' ? HUGE_PAGES_TUNABLE : `${tunables}:${HUGE_PAGES_TUNABLE}` };
}
