import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('eval-text-');

describe('flux-lora eval t5 / clip', () => {
  for (const [component, weights, cases, count] of [
    ['t5', 't5_weights', 't5_cases', 2],
    ['clip', 'clip_weights', 'clip_cases', 2],
  ] as const) {
    it(`${component} writes every expected tensor under its golden name`, async () => {
      const out = join(tmp(), `${component}.safetensors`);
      let stderr = '';
      const code = await main(
        ['eval', component, '--model', goldenPath(`${weights}.safetensors`), '--case', goldenPath(`${cases}.safetensors`), '--out', out],
        () => undefined,
        (t) => (stderr += t),
      );
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const [written, golden] = [await SafetensorsFile.open(out), await SafetensorsFile.open(goldenPath(`${cases}.safetensors`))];
      expect(written.names().length).toBe(count);
      for (const name of written.names()) expectAllClose(await written.readFloat32(name), await golden.readFloat32(name), 1e-5, 1e-5, name);
    });
  }
});
