import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { listening, LONG, request, SLOW, spawnCli, untilHealthy, untilStatus } from './helpers.js';

const tmp = useTempDir('server-cli-');

/** Runs `flux-lora serve …` in this process; `interrupt()` plays Ctrl-C. */
function serveInProcess(args: string[]) {
  let out = '';
  let err = '';
  let interrupt = () => undefined as void;
  const context = {
    cwd: tmp(),
    env: { FLUX_LORA_CACHE_DIR: join(tmp(), 'cache'), FLUX_LORA_DATA_DIR: join(tmp(), 'data') },
    errIsTTY: false,
    onInterrupt: (handler: () => void) => (interrupt = handler),
    offInterrupt: () => undefined,
  };
  const code = main(
    ['serve', ...args],
    (t) => (out += t),
    (t) => (err += t),
    context,
  );
  return { code, out: () => out, err: () => err, interrupt: () => interrupt() };
}

describe('flux-lora serve', () => {
  it('prints its help', async () => {
    const run = serveInProcess(['--help']);
    expect(await run.code).toBe(0);
    expect(run.out()).toContain('Usage: flux-lora serve [options]');
    expect(run.out()).toContain('--upload-url <url>');
    expect(run.out()).toMatch(/--fetch-idle-timeout <s> .*\(default 30\)/);
    expect(run.out()).toMatch(/--lora-timeout <s> .*\(default 600\)/);
  });

  it.each([
    [['--host', '0.0.0.0'], 'binding 0.0.0.0 (not loopback) needs an API token (--token or FLUX_LORA_API_TOKEN), or --no-auth'],
    [['--port', 'http'], '--port must be an integer of at least 0, got "http"'],
    [['--queue-size', 'many'], '--queue-size must be an integer of at least 0, got "many"'],
    [['--fetch-idle-timeout', '0'], '--fetch-idle-timeout must be a number of at least 0.001, got "0"'],
    [['--lora-timeout', 'soon'], '--lora-timeout must be a number of at least 0.001, got "soon"'],
    [['--model-name', 'just-a-name'], '--model-name must look like owner/name'],
    [['--upload-url', 'ftp://bucket'], '--upload-url must be an http(s) URL'],
    [['--log-level', 'loud'], '--log-level must be one of fatal, error, warn, info, debug, trace, silent'],
    [['--max-retained-size', 'lots'], '--max-retained-size must be a number of at least 0, got "lots"'],
    [['--redis', 'http://cache:6379'], '--redis must be a redis:// or rediss:// URL, got "http://cache:6379"'],
    [['--redis', 'redis://r:6379', '--model-dir', '/w'], '--model-dir has no effect on an API node (--redis): the workers load the models'],
    [['--bogus'], "Unknown option '--bogus'"],
  ])('refuses %j with a usage error', async (args, message) => {
    const run = serveInProcess(args);
    expect(await run.code).toBe(2);
    expect(run.err()).toContain(message);
  });

  it('--fetch-idle-timeout fails a download from a stalled host after that time, naming the input', async () => {
    const stalled = createServer(() => undefined);
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    const run = serveInProcess(['--port', '0', '--allow-private-networks', '--fetch-idle-timeout', '0.3']);
    try {
      const url = await listening(run.out);
      await untilHealthy(url);
      const image = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}/photo.png`;
      const answer = await request(`${url}/predictions`, 'POST', { input: { prompt: 'x', image } });
      expect(answer.body).toMatchObject({ status: 'failed', error: `input "image": cannot download: stalled: no data for 300 ms (${image})` });
    } finally {
      run.interrupt();
      stalled.closeAllConnections();
      stalled.close();
    }
    expect(await run.code).toBe(0);
  });

  it('on Ctrl-C stops taking predictions and cancels those still running at --shutdown-timeout, then exits 0', async () => {
    const run = serveInProcess(['--port', '0', '--shutdown-timeout', '0.3']);
    const url = await listening(run.out);
    await untilHealthy(url);
    const pending = request(`${url}/predictions/interrupted`, 'PUT', { input: SLOW });
    expect((await untilStatus({ url }, 'interrupted', 'processing')).body.status).toBe('processing');
    run.interrupt();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await request(`${url}/predictions`, 'POST', { input: SLOW })).body.detail).toBe('the server is shutting down');
    expect((await pending).body).toMatchObject({ id: 'interrupted', status: 'canceled' });
    expect(await run.code).toBe(0);
    const lines = run
      .out()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { msg: string; predictionId?: string });
    expect(lines.some((l) => l.msg.startsWith('shutdown deadline reached'))).toBe(true);
    expect(lines.find((l) => l.predictionId === 'interrupted' && l.msg === 'prediction finished')).toMatchObject({ status: 'canceled' });
  });

  it('on SIGTERM lets the running prediction finish, then the process exits 0', async () => {
    const { child, out, exited } = spawnCli(['serve', '--port', '0'], { FLUX_LORA_CACHE_DIR: join(tmp(), 'cache'), FLUX_LORA_DATA_DIR: join(tmp(), 'data') });
    const url = await listening(out);
    await untilHealthy(url);
    const pending = request(`${url}/predictions/graceful`, 'PUT', { input: LONG });
    expect((await untilStatus({ url }, 'graceful', 'processing')).body.status).toBe('processing');
    child.kill('SIGTERM');
    const answer = await pending;
    expect(answer.body).toMatchObject({ id: 'graceful', status: 'succeeded' });
    expect(answer.body.output).toHaveLength(1);
    expect(await exited).toBe(0);
    expect(out()).toContain('shutting down: finishing accepted predictions');
  });
});

describe('flux-lora worker', () => {
  it.each([
    [[], '--redis <url> is required (or FLUX_LORA_REDIS_URL)'],
    [['--redis', 'redis://127.0.0.1:1'], '--model-name <owner/name> is required: requests for that model are routed to this worker'],
    [['--redis', 'localhost:6379', '--model-name', 'a/b'], '--redis must be a redis:// or rediss:// URL, got "localhost:6379"'],
    [['--redis', 'redis://127.0.0.1:1', '--model-name', 'flux'], '--model-name must look like owner/name, got "flux"'],
    [['--redis', 'redis://127.0.0.1:1', '--model-name', 'a/b', '--lora-timeout', '0'], '--lora-timeout must be a number of at least 0.001, got "0"'],
    [['--port', '80'], "Unknown option '--port'"],
  ])('refuses %j with a usage error', async (args, message) => {
    let err = '';
    const code = await main(
      ['worker', ...args],
      () => undefined,
      (t) => (err += t),
      { env: {} },
    );
    expect(code).toBe(2);
    expect(err).toBe(`flux-lora: worker: ${message}\n`);
  });

  it('prints its help', async () => {
    let out = '';
    expect(
      await main(
        ['worker', '--help'],
        (t) => (out += t),
        () => undefined,
      ),
    ).toBe(0);
    expect(out).toContain('Usage: flux-lora worker --redis <url> --model-name <owner/name> [options]');
  });
});
