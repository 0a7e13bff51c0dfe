/** The golden safety files (test/golden/data/safety) and the model folders they make. */
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { RgbImage } from '../../src/images/decode.js';
import { readCaseFile, type CaseTensor } from '../../src/eval/safety-eval.js';
import type { SafetyPaths } from '../../src/pipeline/safety-checker.js';
import { goldenPath } from './golden.js';

export const safetyGolden = (name: string): string => goldenPath(`safety/${name}`);

export async function goldenCases(name: string): Promise<Map<string, CaseTensor>> {
  return readCaseFile(safetyGolden(name));
}

export function tensor(cases: Map<string, CaseTensor>, name: string): CaseTensor {
  const t = cases.get(name);
  if (t === undefined) throw new Error(`no golden tensor "${name}"`);
  return t;
}

/** Row n of an image batch [N, H, W, 3] (or the whole [H, W, 3] tensor) as an RgbImage. */
export function rgbImage(t: CaseTensor, n = 0): RgbImage {
  const [height, width] = t.shape.slice(-3) as [number, number];
  const size = height * width * 3;
  return { width, height, data: Uint8Array.from(t.values.subarray(n * size, (n + 1) * size)) };
}

/**
 * The golden tiny models laid out as they ship (links to the golden files): a diffusers
 * `safety_checker/` folder with the pipeline's `feature_extractor/` beside it, and the
 * classifier's Hugging Face folder.
 */
export function goldenSafetyFolders(root: string): SafetyPaths {
  const link = (folder: string, links: Record<string, string>) => {
    mkdirSync(join(root, folder), { recursive: true });
    for (const [name, target] of Object.entries(links)) symlinkSync(safetyGolden(target), join(root, folder, name));
    return join(root, folder);
  };
  link('feature_extractor', { 'preprocessor_config.json': 'clip_preprocessor_config.json' });
  return {
    checker: link('safety_checker', { 'config.json': 'safety_checker_config.json', 'model.safetensors': 'safety_checker.safetensors' }),
    classifier: link('falcon', {
      'config.json': 'falcon_vit_config.json',
      'model.safetensors': 'falcon_vit.safetensors',
      'preprocessor_config.json': 'falcon_preprocessor_config.json',
    }),
  };
}
