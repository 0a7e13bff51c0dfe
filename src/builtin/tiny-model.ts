/**
 * The built-in demo model: a tiny FLUX pipeline trained on the demo world (src/demo-world/: flat
 * shapes in eight colours on plain backgrounds) by tools/train-builtin/, so flux-lora draws real
 * pictures out of the box without downloads. Its files ship in assets/builtin/ exactly as real
 * weights are laid out (FLUX.1-dev/ a diffusers pipeline folder; FLUX.1-schnell/ a slim one holding
 * only its transformer, borrowing the rest from its sibling; loras/ the demo LoRA `builtin:tok`)
 * and are copied into the cache folder on first use, with a tiny safety pair beside them
 * (./tiny-safety.ts) so the safety path always runs.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTinySafetyPair } from './tiny-safety.js';

/** The shipped weights of the built-in model (the same path from src/builtin/ and dist/builtin/). */
export const BUILTIN_ASSETS = fileURLToPath(new URL('../../assets/builtin', import.meta.url));

/** Bump when the shipped files or the safety pair change: the folder name carries it, so old caches are not reused. */
const VERSION = 'builtin-v5';

/** The folder of the built-in LoRAs inside an installed built-in model (`builtin:<name>` is `<name>.safetensors` there). */
export function builtinLoraFolder(modelRoot: string): string {
  return join(modelRoot, 'loras');
}

/**
 * The built-in model folder under `cacheDir` (holding FLUX.1-dev/, FLUX.1-schnell/ and loras/),
 * installed on first use. Concurrent first uses are safe: each writes a private temp folder and
 * the first rename wins.
 */
export async function ensureBuiltinModel(cacheDir: string): Promise<string> {
  const target = join(cacheDir, VERSION);
  if (existsSync(join(target, 'FLUX.1-schnell', 'model_index.json'))) return target;
  await mkdir(cacheDir, { recursive: true });
  const temp = join(cacheDir, `.${VERSION}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await cp(BUILTIN_ASSETS, temp, { recursive: true });
    await writeTinySafetyPair(temp);
    await rename(temp, target).catch((error: NodeJS.ErrnoException) => {
      if (!existsSync(join(target, 'FLUX.1-schnell', 'model_index.json'))) throw error;
    });
    return target;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
