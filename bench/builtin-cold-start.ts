/** `flux-lora predict` on the built-in model (1024², 28 steps, the README's command) from a cold process: wall seconds. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export function builtinColdStart(cacheDir: string, cwd: string): number {
  const bin = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
  const started = performance.now();
  const run = spawnSync(process.execPath, [bin, 'predict', '-i', 'prompt=a photo of TOK'], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, FLUX_LORA_CACHE_DIR: cacheDir, FLUX_MODEL_DIR: '' },
  });
  if (run.status !== 0) throw new Error(run.stderr);
  return (performance.now() - started) / 1000;
}
