import { describe, expect, it } from 'vitest';
import { modelSettings } from '../../../src/cli/model-options.js';
import { UsageError } from '../../../src/cli/usage-error.js';

describe('shared model options of predict and serve', () => {
  it('take flags over the environment, and treat empty variables as unset', () => {
    const env = {
      FLUX_MODEL_DIR: '/env/models',
      FLUX_SAFETY_CHECKER: '/env/sc',
      FLUX_SAFETY_CLASSIFIER: '/env/cls',
      FLUX_LORA_DIR: '',
      FLUX_LORA_CACHE_DIR: '/cache',
      HF_TOKEN: '',
      HUGGING_FACE_HUB_TOKEN: 'hf',
    };
    expect(modelSettings('predict', {}, env, '/')).toEqual({
      modelDir: '/env/models',
      cacheDir: '/cache',
      memoryBudgetBytes: undefined,
      deviceMemoryBudgetBytes: undefined,
      devices: { fallback: 'cpu', components: {} },
      safety: { checker: '/env/sc', classifier: '/env/cls' },
      loraCache: { localRoot: '/', tokens: { replicate: undefined, huggingface: 'hf', civitai: undefined } },
    });
    expect(modelSettings('serve', { 'model-dir': '/m', 'safety-checker': '/sc', 'memory-budget': '1.5', 'lora-dir': '/loras' }, env, null)).toMatchObject({
      modelDir: '/m',
      memoryBudgetBytes: 1.5 * 1024 ** 3,
      safety: { checker: '/sc', classifier: '/env/cls' },
      loraCache: { localRoot: '/loras' },
    });
    expect(modelSettings('serve', { 'disable-safety-checker': true }, {}, null)).toMatchObject({
      modelDir: undefined,
      safety: 'disabled',
      loraCache: { localRoot: null },
    });
    expect(modelSettings('serve', {}, { FLUX_MODEL_DIR: '' }, null).safety).toBeUndefined();
    expect(modelSettings('serve', {}, { FLUX_DEVICE: 'auto,t5=cpu' }, null).devices).toEqual({ fallback: 'auto', components: { t5: 'cpu' } });
    expect(modelSettings('predict', { device: 'webgpu' }, { FLUX_DEVICE: 'auto' }, '/').devices).toEqual({ fallback: 'webgpu', components: {} });
  });

  it('refuse half a safety pair, a contradiction, a bad budget and a bad device, naming the command and the source', () => {
    expect(() => modelSettings('serve', { 'safety-checker': '/sc' }, {}, null)).toThrow(
      new UsageError('serve: the safety checker needs both --safety-checker and --safety-classifier (or FLUX_SAFETY_CHECKER and FLUX_SAFETY_CLASSIFIER)'),
    );
    expect(() => modelSettings('predict', { 'disable-safety-checker': true, 'safety-checker': '/a', 'safety-classifier': '/b' }, {}, '/')).toThrow(
      'predict: --disable-safety-checker contradicts',
    );
    expect(() => modelSettings('predict', { 'memory-budget': '0' }, {}, '/')).toThrow('predict: --memory-budget must be a positive number of GiB, got "0"');
    expect(() => modelSettings('serve', { 'device-memory': 'lots' }, {}, null)).toThrow('serve: --device-memory must be a positive number of GiB, got "lots"');
    expect(modelSettings('serve', { 'device-memory': '0.5' }, {}, null).deviceMemoryBudgetBytes).toBe(0.5 * 1024 ** 3);
    expect(() => modelSettings('predict', { device: 'cuda' }, {}, '/')).toThrow(
      new UsageError(
        `predict: --device: "cuda" is not a device (auto, webgpu or cpu); for example auto, webgpu, cpu or webgpu,t5=cpu (components: transformer, vae, t5, clip, safety)`,
      ),
    );
    expect(() => modelSettings('serve', {}, { FLUX_DEVICE: 'gpu=webgpu' }, null)).toThrow(/^serve: FLUX_DEVICE: "gpu=webgpu" does not name a component/);
  });
});
