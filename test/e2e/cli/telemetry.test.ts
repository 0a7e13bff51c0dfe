/**
 * onnxruntime-node's telemetry stays off (issue: "the engine phones home"): a prediction run by
 * the installed bin, in an environment without ORT_DISABLE_TELEMETRY, leaves no
 * `mat-debug-<pid>.log` in the temp folder and no telemetry database under the cache folder.
 * HOME, XDG_CACHE_HOME and TMPDIR point into a fresh folder, so whatever the library writes
 * lands where the test looks. (With FLUX_LORA_ONNXRUNTIME_TELEMETRY=1, the same run writes both.)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('telemetry-');
const BIN = fileURLToPath(new URL('../../../dist/cli.js', import.meta.url));

/** Every file under `dir`, as paths relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

it('a prediction leaves no mat-debug log for its process and no telemetry database', async () => {
  const [home, temp, out] = ['home', 'tmp', 'out'].map((name) => join(tmp(), name)) as [string, string, string];
  for (const dir of [home, temp, out]) mkdirSync(dir);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_CACHE_HOME: join(home, '.cache'),
    TMPDIR: temp,
    FLUX_LORA_CACHE_DIR: join(tmp(), 'flux-cache'),
    FLUX_MODEL_DIR: '',
  };
  // The bin must turn it off itself (the test runner's own switch is not inherited here).
  delete env.ORT_DISABLE_TELEMETRY;
  delete env.FLUX_LORA_ONNXRUNTIME_TELEMETRY;
  const child = spawn(process.execPath, [BIN, 'predict', '-i', 'prompt=x', '-i', 'aspect_ratio=custom', '-i', 'width=256', '-i', 'height=256', '-o', out], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code, stderr).toBe(0);
  expect(readdirSync(out)).toEqual(['out-0.webp']);
  const log = `mat-debug-${child.pid}.log`;
  expect(existsSync(join(temp, log))).toBe(false);
  expect(existsSync(join(tmpdir(), log))).toBe(false);
  expect(filesUnder(home).filter((path) => /Microsoft|onnxruntime/i.test(path))).toEqual([]);
  expect(filesUnder(temp)).toEqual([]);
});
