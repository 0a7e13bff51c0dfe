/**
 * A real `flux-lora serve` (the built bin, built-in model, with a token) and Debian's chromium
 * driven by playwright-core, for the playground's tests. Chromium is required, never skipped:
 * .ci/run installs it when it is missing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const TOKEN = 'playground-test-token';
/** Screenshots the suite writes for people to look at (ignored by git). */
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'playground');

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`the browser tests need chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH); .ci/run installs it`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

export interface ServedPlayground {
  url: string;
  logs(): string;
  stop(): Promise<void>;
}

/** Starts `node dist/cli.js serve --port 0 --token …` and resolves once it listens and is READY. */
export async function serve(cacheDir: string): Promise<ServedPlayground> {
  const bin = join(ROOT, 'dist', 'cli.js');
  const child: ChildProcess = spawn(process.execPath, [bin, 'serve', '--port', '0', '--token', TOKEN], {
    env: { ...process.env, FLUX_LORA_CACHE_DIR: cacheDir, FLUX_LORA_DATA_DIR: join(cacheDir, 'server-data'), FLUX_MODEL_DIR: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const started = Date.now();
    const check = setInterval(() => {
      const found = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
      if (found !== undefined) {
        clearInterval(check);
        resolve(found);
      } else if (child.exitCode !== null || Date.now() - started > 30_000) {
        clearInterval(check);
        reject(new Error(`flux-lora serve did not start:\n${output}`));
      }
    }, 20);
  });
  for (;;) {
    const health = (await (await fetch(`${url}/health-check`)).json()) as { status: string };
    if (health.status === 'READY') break;
    if (health.status === 'SETUP_FAILED') throw new Error(`setup failed:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    logs: () => output,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
