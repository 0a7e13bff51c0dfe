import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultCacheDir, disableEngineTelemetry, engineEnvironment, readEnvironment } from '../../../src/config.js';

describe('environment settings', () => {
  it('read every variable with one rule: empty counts as unset', () => {
    const empty = readEnvironment({
      FLUX_MODEL_DIR: '',
      FLUX_LORA_CACHE_DIR: '',
      FLUX_LORA_DATA_DIR: '',
      XDG_DATA_HOME: '',
      FLUX_LORA_REDIS_URL: '',
      PORT: '',
      REPLICATE_API_TOKEN: '',
      HF_TOKEN: '',
    });
    expect(empty).toEqual({
      modelDir: undefined,
      cacheDir: join(homedir(), '.cache', 'flux-lora'),
      dataDir: join(homedir(), '.local', 'share', 'flux-lora'),
      redisUrl: undefined,
      loraDir: undefined,
      safetyChecker: undefined,
      safetyClassifier: undefined,
      apiToken: undefined,
      port: undefined,
      webhookToken: undefined,
      loraTokens: { replicate: undefined, huggingface: undefined, civitai: undefined },
    });
    const set = readEnvironment({
      FLUX_MODEL_DIR: '/m',
      FLUX_LORA_CACHE_DIR: '/c',
      FLUX_LORA_DIR: '/l',
      FLUX_LORA_DATA_DIR: '/d',
      FLUX_LORA_REDIS_URL: 'redis://r:6379',
      FLUX_SAFETY_CHECKER: '/sc',
      FLUX_SAFETY_CLASSIFIER: '/cls',
      FLUX_LORA_API_TOKEN: 'api',
      PORT: '8080',
      WEBHOOK_AUTH_TOKEN: 'hook',
      REPLICATE_API_TOKEN: 'r',
      HF_TOKEN: 'h',
      HUGGING_FACE_HUB_TOKEN: 'ignored while HF_TOKEN is set',
      CIVITAI_TOKEN: 'c',
    });
    expect(set).toEqual({
      modelDir: '/m',
      cacheDir: '/c',
      dataDir: '/d',
      redisUrl: 'redis://r:6379',
      loraDir: '/l',
      safetyChecker: '/sc',
      safetyClassifier: '/cls',
      apiToken: 'api',
      port: '8080',
      webhookToken: 'hook',
      loraTokens: { replicate: 'r', huggingface: 'h', civitai: 'c' },
    });
    expect(defaultCacheDir({ FLUX_LORA_CACHE_DIR: '' })).toBe(join(homedir(), '.cache', 'flux-lora'));
    expect(readEnvironment({ XDG_DATA_HOME: '/xdg' }).dataDir).toBe('/xdg/flux-lora');
  });

  it("turn onnxruntime's telemetry off, whatever the environment says, unless the operator allows it", () => {
    const env: Record<string, string | undefined> = { PATH: '/bin', ORT_DISABLE_TELEMETRY: '0' };
    disableEngineTelemetry(env);
    expect(env).toEqual({ PATH: '/bin', ORT_DISABLE_TELEMETRY: '1' });
    for (const value of ['', '0', 'yes']) {
      const unset: Record<string, string | undefined> = { FLUX_LORA_ONNXRUNTIME_TELEMETRY: value };
      disableEngineTelemetry(unset);
      expect(unset.ORT_DISABLE_TELEMETRY).toBe('1');
    }
    const allowed: Record<string, string | undefined> = { FLUX_LORA_ONNXRUNTIME_TELEMETRY: '1' };
    disableEngineTelemetry(allowed);
    expect(allowed).toEqual({ FLUX_LORA_ONNXRUNTIME_TELEMETRY: '1' });
  });

  it("ask the engine's malloc for huge pages, keeping other glibc tunables and an operator's own hugetlb choice", () => {
    expect(engineEnvironment({ PATH: '/bin' })).toEqual({ PATH: '/bin', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' });
    expect(engineEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES).toBe('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1');
    expect(engineEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }).GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=0');
    expect(engineEnvironment({ GLIBC_TUNABLES: '' }).GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=1');
  });
});
