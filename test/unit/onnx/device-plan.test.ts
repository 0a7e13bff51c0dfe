import { afterEach, describe, expect, it } from 'vitest';
import { chooseDevices, CPU_ONLY, DeviceSpecError, parseDevicePlan } from '../../../src/onnx/device-plan.js';
import { probeWebGpu } from '../../../src/onnx/webgpu-probe.js';

describe('--device / FLUX_DEVICE', () => {
  it('reads a default device and per-component choices', () => {
    expect(parseDevicePlan('auto', '--device')).toEqual({ fallback: 'auto', components: {} });
    expect(parseDevicePlan('webgpu, t5=cpu', '--device')).toEqual({ fallback: 'webgpu', components: { t5: 'cpu' } });
    expect(parseDevicePlan('transformer=webgpu,vae=auto', 'FLUX_DEVICE')).toEqual({ fallback: 'cpu', components: { transformer: 'webgpu', vae: 'auto' } });
  });

  it('names the bad part and where it came from', () => {
    for (const [text, problem] of [
      ['gpu', '"gpu" is not a device'],
      ['', '"" is not a device'],
      ['cpu,webgpu', 'names the default device twice'],
      ['unet=webgpu', '"unet=webgpu" does not name a component'],
      ['vae=fast', '"fast" is not a device'],
      ['t5=cpu,t5=webgpu', 't5 is given twice'],
      ['vae=cpu=webgpu', 'does not name a component'],
    ]) {
      const attempt = () => parseDevicePlan(text as string, 'FLUX_DEVICE');
      expect(attempt).toThrow(DeviceSpecError);
      expect(attempt).toThrow(
        new RegExp(`^FLUX_DEVICE: .*${(problem as string).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*components: transformer, vae, t5, clip, safety`),
      );
    }
  });

  describe('without a usable Vulkan driver', () => {
    const saved = process.env.VK_ICD_FILENAMES;
    afterEach(() => {
      if (saved === undefined) delete process.env.VK_ICD_FILENAMES;
      else process.env.VK_ICD_FILENAMES = saved;
    });

    it('runs everything on the CPU, saying why and which asked for WebGPU', async () => {
      // The smoke check's process inherits this: the Vulkan loader then finds no driver.
      process.env.VK_ICD_FILENAMES = '/nonexistent/icd.json';
      const choice = await chooseDevices(parseDevicePlan('auto,transformer=webgpu,t5=cpu', '--device'), probeWebGpu);
      expect(Object.values(choice.devices)).toEqual(['cpu', 'cpu', 'cpu', 'cpu', 'cpu']);
      expect(choice.adapter).toBeUndefined();
      expect(choice.lines).toEqual([
        'WebGPU is not available: no WebGPU adapter (a Vulkan driver, libvulkan.so.1 and a Vulkan 1.1 device are needed on Linux); transformer, vae, clip, safety run on the CPU',
        '[!] transformer asked for webgpu: falling back to the CPU',
      ]);
    });
  });

  it('all on the CPU needs no check and says nothing', async () => {
    expect(await chooseDevices(CPU_ONLY, probeWebGpu)).toEqual({
      devices: { transformer: 'cpu', vae: 'cpu', t5: 'cpu', clip: 'cpu', safety: 'cpu' },
      lines: [],
    });
  });
});
