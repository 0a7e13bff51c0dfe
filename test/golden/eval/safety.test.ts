import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { readCaseFile } from '../../../src/eval/safety-eval.js';
import { expectAllClose } from '../../helpers/golden.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { goldenSafetyFolders, safetyGolden } from '../../helpers/golden-safety.js';

const tmp = useTempDir('eval-safety-');

/** test/golden/data/safety/README.md §6: model tensors 1e-4, cosines and raw scores 2e-5, rounded scores one rounding step, decisions exact (the 0.01 adjustment as float32). */
const TOLERANCE: Record<string, number> = {
  special_cos: 2e-5,
  concept_cos: 2e-5,
  special_scores_raw: 2e-5,
  concept_scores_raw: 2e-5,
  special_scores: 0.001 + 1e-9,
  concept_scores: 0.001 + 1e-9,
  special_care: 0,
  adjustment: 1e-9,
  has_nsfw: 0,
  predicted: 0,
};

describe('flux-lora eval safety-clip / safety-vit', () => {
  const cases = [
    ['safety-clip', 'checker', 'clip_cases.safetensors', 14],
    ['safety-vit', 'classifier', 'vit_cases.safetensors', 4],
  ] as const;
  for (const [component, model, caseFile, count] of cases) {
    it(`${component} writes every golden name within the README tolerances`, async () => {
      const folders = goldenSafetyFolders(join(tmp(), component));
      const out = join(tmp(), `${component}.safetensors`);
      let stderr = '';
      const code = await main(
        ['eval', component, '--model', folders[model], '--case', safetyGolden(caseFile), '--out', out],
        () => undefined,
        (t) => (stderr += t),
      );
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const [written, golden] = [await readCaseFile(out), await readCaseFile(safetyGolden(caseFile))];
      expect(written.size).toBe(count);
      for (const [name, t] of written) {
        const expected = golden.get(name);
        expect(expected?.shape, name).toEqual(t.shape);
        expectAllClose(t.values, expected?.values ?? [], TOLERANCE[name] ?? 1e-4, 0, name);
      }
    });
  }

  it('names a case file without pixel values', async () => {
    let stderr = '';
    const code = await main(
      ['eval', 'safety-vit', '--model', 'm', '--case', safetyGolden('preprocess.safetensors'), '--out', join(tmp(), 'x.safetensors')],
      () => undefined,
      (t) => (stderr += t),
    );
    expect({ code, stderr }).toEqual({ code: 1, stderr: `flux-lora: ${safetyGolden('preprocess.safetensors')}: needs "pixel_values" [N, 3, S, S]\n` });
  });
});
