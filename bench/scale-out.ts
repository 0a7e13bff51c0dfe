/**
 * Scaled deployment benchmark on the built-in model, over real loopback HTTP and a real
 * redis-server (REDIS_SERVER names another binary):
 *   1. added latency per synchronous prediction: (request → answer minus predict_time) through
 *      an API node and a worker, minus the same on the single server, p50 (target ≤ 20 ms);
 *   2. throughput: a burst of async predictions through the API node with 1 worker, then 2;
 *   3. recovery: a worker killed with -9 mid-prediction: time until an API node noticed (its
 *      heartbeat expired) and queued the prediction again, until the other worker runs it, and
 *      until it succeeded.
 * The API node runs in this process; workers are child processes (`flux-lora worker`), each
 * with its engine process, as deployed.
 */
import '../src/engine-telemetry-off.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MAX_PIXELS } from '../src/images/decode.js';
import { DEFAULT_IMAGE_SOURCE } from '../src/images/source.js';
import { ClusterService } from '../src/scale/cluster-service.js';
import { connect } from '../src/scale/redis.js';
import { DEFAULT_SERVER_OPTIONS, startHttpServer, startServer } from '../src/server/app.js';
import { DEFAULT_WEBHOOK_OPTIONS } from '../src/server/webhooks.js';

const SMALL = { prompt: 'a photo of TOK', aspect_ratio: 'custom', width: 256, height: 256, num_inference_steps: 2 };
const BURST_INPUT = { ...SMALL, num_inference_steps: 8 };
const MEDIUM = { ...SMALL, width: 768, height: 768, num_inference_steps: 40 };
const BURST = 24;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'flux-lora-bench-scale-'));
const cacheDir = join(work, 'cache');
const children: ChildProcess[] = [];
const silent = { level: 'silent' };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const ms = (value: number) => `${value.toFixed(1)} ms`;
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis));

type Prediction = { id: string; status: string; logs: string; metrics: { predict_time: number } };

async function call(url: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<Prediction> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await response.json()) as Prediction;
}

/** p50 of (request → answer) minus predict_time over 20 synchronous predictions. */
async function overheads(base: string): Promise<number[]> {
  await call(`${base}/predictions`, 'POST', { input: SMALL });
  const values: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const prediction = await call(`${base}/predictions`, 'POST', { input: { ...SMALL, seed: i } });
    if (prediction.status !== 'succeeded') throw new Error(`prediction ${i}: ${prediction.status}`);
    values.push(performance.now() - t0 - prediction.metrics.predict_time * 1000);
  }
  return values;
}

function startWorker(redisUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'worker', '--redis', redisUrl, '--model-name', 'bench/tiny'], {
    env: { ...process.env, FLUX_LORA_CACHE_DIR: cacheDir, FLUX_MODEL_DIR: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('worker ready')) resolve(child);
    });
  });
}

async function until(check: () => Promise<boolean>): Promise<number> {
  for (;;) {
    if (await check()) return performance.now();
    await sleep(10);
  }
}

try {
  // The single server, for comparison.
  const single = await startServer({ ...DEFAULT_SERVER_OPTIONS, port: 0, version: 'bench', cacheDir, auth: {}, logger: silent });
  await single.service.whenReady();
  const singleOverheads = await overheads(single.url);
  await single.shutdown();

  const redisPort = await freePort();
  const redisServer = spawn(
    process.env.REDIS_SERVER ?? 'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  children.push(redisServer);
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const probe = connect(redisUrl, 'worker');
  await probe.ping();
  probe.disconnect();

  const workers = [await startWorker(redisUrl)];
  const api = await startHttpServer(
    { ...DEFAULT_SERVER_OPTIONS, port: 0, version: 'bench', auth: {}, logger: silent },
    (log) =>
      new ClusterService({
        redisUrl,
        queueSize: 64,
        retentionMs: 600_000,
        imageSource: { ...DEFAULT_IMAGE_SOURCE, maxPixels: DEFAULT_MAX_PIXELS, allowLocalFiles: false, allowPrivateNetworks: false },
        webhooks: { ...DEFAULT_WEBHOOK_OPTIONS, userAgent: 'bench' },
        log,
      }),
  );
  await api.service.whenReady();

  // 1. Added latency.
  const clusterOverheads = await overheads(api.url);
  const single50 = percentile(singleOverheads, 50);
  const cluster50 = percentile(clusterOverheads, 50);
  console.log(
    `sync prediction overhead (256², 2 steps), 20 runs: single server p50 ${ms(single50)}; API node + 1 worker on Redis p50 ${ms(cluster50)}, ` +
      `p90 ${ms(percentile(clusterOverheads, 90))} → added ${ms(cluster50 - single50)} per prediction (target ≤ 20 ms)`,
  );

  // 2. Throughput with 1 and 2 workers.
  const burst = async () => {
    const t0 = performance.now();
    const created = await Promise.all(
      Array.from({ length: BURST }, (_, i) => call(`${api.url}/v1/predictions`, 'POST', { input: { ...BURST_INPUT, seed: i } })),
    );
    await Promise.all(
      created.map(({ id }) => until(async () => ['succeeded', 'failed'].includes((await call(`${api.url}/v1/predictions/${id}`, 'GET')).status))),
    );
    return (performance.now() - t0) / 1000;
  };
  const one = await burst();
  workers.push(await startWorker(redisUrl));
  await burst(); // the second worker loads its models
  const two = await burst();
  console.log(
    `throughput, ${BURST} async predictions (256², 8 steps) at once: 1 worker ${(BURST / one).toFixed(2)}/s (${one.toFixed(1)} s), ` +
      `2 workers ${(BURST / two).toFixed(2)}/s (${two.toFixed(1)} s): ×${(one / two).toFixed(2)}`,
  );

  // 3. Recovery after kill -9 of the worker running a prediction.
  const { id } = await call(`${api.url}/v1/predictions`, 'POST', { input: MEDIUM });
  await until(async () => (await call(`${api.url}/v1/predictions/${id}`, 'GET')).logs.includes('| 1/40'));
  let runner: string | undefined;
  await until(async () => {
    const health = (await fetch(`${api.url}/health-check`).then((r) => r.json())) as { workers: { id: string; running: string | null }[] };
    runner = health.workers.find((w) => w.running === id)?.id;
    return runner !== undefined;
  });
  const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(runner ?? '')?.[1]);
  const killedAt = performance.now();
  process.kill(pid, 'SIGKILL');
  const requeued = await until(async () => (await call(`${api.url}/v1/predictions/${id}`, 'GET')).logs.includes('retrying on another worker'));
  const resumed = await until(async () => (await call(`${api.url}/v1/predictions/${id}`, 'GET')).status === 'processing');
  const ended = await until(async () => ['succeeded', 'failed'].includes((await call(`${api.url}/v1/predictions/${id}`, 'GET')).status));
  const final = await call(`${api.url}/v1/predictions/${id}`, 'GET');
  console.log(
    `recovery after kill -9 of the worker mid-prediction (768², 40 steps): requeued after ${((requeued - killedAt) / 1000).toFixed(2)} s ` +
      `(heartbeat TTL 2 s), running on the other worker after ${((resumed - killedAt) / 1000).toFixed(2)} s, ` +
      `${final.status} after ${((ended - killedAt) / 1000).toFixed(2)} s (its rerun took ${final.metrics.predict_time.toFixed(2)} s)`,
  );
  await api.shutdown();
} finally {
  for (const child of children) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}
