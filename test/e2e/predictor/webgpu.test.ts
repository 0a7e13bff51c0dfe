/**
 * The built-in model on the WebGPU provider (lavapipe in CI), every component on it
 * (`--device webgpu`): the same picture as on the CPU, and the device memory budget.
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { RgbPixels } from '../../../src/demo-world/render.js';
import { parseDevicePlan } from '../../../src/onnx/device-plan.js';
import { Predictor, type PredictorOptions } from '../../../src/predictor/predictor.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { describeWebGpu } from '../../helpers/webgpu.js';
import { pixelsOf } from '../../helpers/world-pictures.js';

const tmp = useTempDir('predictor-webgpu-');
const predictors: Predictor[] = [];
afterAll(async () => {
  await Promise.all(predictors.map((p) => p.close()));
});

const INPUT = {
  prompt: 'a large red circle on the left on a white background',
  seed: 5,
  num_inference_steps: 1,
  aspect_ratio: 'custom',
  width: 256,
  height: 256,
};

async function picture(options: Omit<PredictorOptions, 'cacheDir'>): Promise<{ picture: RgbPixels; logs: string[]; predictor: Predictor }> {
  const logs: string[] = [];
  const predictor = await Predictor.create({ cacheDir: join(tmp(), 'cache'), log: (line) => logs.push(line), ...options });
  predictors.push(predictor);
  const outputDir = await mkdtemp(join(tmp(), 'out-'));
  const result = await predictor.predict({ ...INPUT, output_format: 'png' }, { outputDir, log: (line) => logs.push(line) });
  return { picture: await pixelsOf(result.files[0] as string), logs, predictor };
}

function largestDifference(a: RgbPixels, b: RgbPixels): number {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) worst = Math.max(worst, Math.abs((a.data[i] as number) - (b.data[i] as number)));
  return worst;
}

describeWebGpu('the built-in model on WebGPU', () => {
  it('draws what it draws on the CPU (pixels within 1 of 255), names the adapter, and keeps to a device memory budget', async () => {
    const cpu = await picture({});
    // A budget no component fits: the text encoders, the transformer and the VAE each release the one before.
    const gpu = await picture({ devices: parseDevicePlan('webgpu', '--device'), deviceMemoryBudgetBytes: 1 });
    expect(Object.values(gpu.predictor.devices.devices)).toEqual(['webgpu', 'webgpu', 'webgpu', 'webgpu', 'webgpu']);
    expect(gpu.logs.find((l) => l.startsWith('WebGPU adapter: '))).toContain(gpu.predictor.devices.adapter?.name);
    expect(largestDifference(gpu.picture, cpu.picture)).toBeLessThanOrEqual(1);
    expect(gpu.logs.filter((l) => l.startsWith('Releasing')).map((l) => l.replace(/ \(.*\) to stay within/, ' to stay within'))).toEqual([
      'Releasing text encoders to stay within the 0.0 GiB device memory budget',
      'Releasing FLUX.1-dev transformer to stay within the 0.0 GiB device memory budget',
    ]);
    expect(cpu.logs.some((l) => l.startsWith('Releasing'))).toBe(false);
  });
});
