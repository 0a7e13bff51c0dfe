import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('eval-vae-');

describe('flux-lora eval vae-encode / vae-decode', () => {
  for (const [component, layout] of [
    ['vae-encode', 'bfl'],
    ['vae-decode', 'diffusers'],
  ] as const) {
    it(`${component} writes the golden names within tolerance (${layout} layout)`, async () => {
      const out = join(tmp(), `${component}.safetensors`);
      let stderr = '';
      const code = await main(
        ['eval', component, '--model', goldenPath(`vae_${layout}.safetensors`), '--case', goldenPath('vae_cases.safetensors'), '--out', out],
        () => undefined,
        (t) => (stderr += t),
      );
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const [written, golden] = [await SafetensorsFile.open(out), await SafetensorsFile.open(goldenPath('vae_cases.safetensors'))];
      expect(written.names().length).toBe(component === 'vae-encode' ? 3 : 1);
      for (const name of written.names()) expectAllClose(await written.readFloat32(name), await golden.readFloat32(name), 1e-5, 1e-5, name);
    });
  }

  it('refuses --lora for components that take none', async () => {
    let stderr = '';
    const code = await main(
      ['eval', 'vae-decode', '--model', 'm', '--case', 'c', '--out', 'o', '--lora', 'x.safetensors'],
      () => undefined,
      (t) => (stderr += t),
    );
    expect({ code, stderr }).toEqual({ code: 2, stderr: 'flux-lora: eval vae-decode: --lora is not supported by this component\n' });
  });

  it('refuses a bad --device or FLUX_DEVICE before loading anything', async () => {
    for (const [args, env, message] of [
      [['--device', 'gpu'], {}, 'eval vae-decode: --device: "gpu" is not a device'],
      [[], { FLUX_DEVICE: 'vae=metal' }, 'eval vae-decode: FLUX_DEVICE: "metal" is not a device'],
    ] as const) {
      let stderr = '';
      const code = await main(
        ['eval', 'vae-decode', '--model', 'm', '--case', 'c', '--out', 'o', ...args],
        () => undefined,
        (t) => (stderr += t),
        { env },
      );
      expect({ code, stderr: stderr.split(' (auto')[0] }).toEqual({ code: 2, stderr: `flux-lora: ${message}` });
    }
  });
});
