/**
 * The built-in model draws the same picture on the WebGPU provider (lavapipe in CI) as on the CPU:
 * every component on WebGPU (`--device webgpu`), a short run at a small size.
 */
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Predictor } from '../../../src/predictor/predictor.js';
import { parseDevicePlan } from '../../../src/onnx/device-plan.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { describeWebGpu } from '../../helpers/webgpu.js';
import { predictPictures } from '../../helpers/world-pictures.js';

const tmp = useTempDir('predictor-webgpu-');
const predictors: Predictor[] = [];
afterAll(async () => {
  await Promise.all(predictors.map((p) => p.close()));
});

describeWebGpu('the built-in model on WebGPU', () => {
  it('draws what it draws on the CPU (pixels within 1 of 255), with the adapter named in the setup log', async () => {
    const cacheDir = join(tmp(), 'cache');
    const logs: string[] = [];
    const cpu = await Predictor.create({ cacheDir });
    const gpu = await Predictor.create({ cacheDir, devices: parseDevicePlan('webgpu', '--device'), log: (line) => logs.push(line) });
    predictors.push(cpu, gpu);
    expect(Object.values(gpu.devices.devices)).toEqual(['webgpu', 'webgpu', 'webgpu', 'webgpu', 'webgpu']);
    expect(logs.find((l) => l.startsWith('WebGPU adapter: '))).toContain(gpu.devices.adapter?.name);
    const input = {
      prompt: 'a large red circle on the left on a white background',
      seed: 5,
      num_inference_steps: 3,
      aspect_ratio: 'custom',
      width: 256,
      height: 256,
    };
    const [expected] = await predictPictures(cpu, input, tmp());
    const [actual] = await predictPictures(gpu, input, tmp());
    expect([actual?.width, actual?.height]).toEqual([256, 256]);
    let worst = 0;
    for (let i = 0; i < (expected?.data.length ?? 0); i++) worst = Math.max(worst, Math.abs((actual?.data[i] ?? -9) - (expected?.data[i] as number)));
    expect(worst).toBeLessThanOrEqual(1);
  });
});
