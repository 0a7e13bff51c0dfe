/**
 * HTTP server benchmark on the built-in model, over real loopback HTTP:
 *   1. server overhead per synchronous prediction: request → response time minus the
 *      predictor's own predict_time (target ≤ 20 ms);
 *   2. /health-check latency p50/p99 while a long prediction runs (target p99 ≤ 50 ms);
 *   3. 50 async predictions submitted at once: all complete, none lost, peak RSS.
 * Logs go through pino at info level into a sink, as a deployment would format them.
 */
import '../src/engine-telemetry-off.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SERVER_OPTIONS, startServer } from '../src/server/app.js';

const SMALL = { prompt: 'a photo of TOK', aspect_ratio: 'custom', width: 256, height: 256, num_inference_steps: 2 };
const LONG = { prompt: 'a photo of TOK', aspect_ratio: 'custom', width: 1440, height: 1440, num_inference_steps: 30 };
const BURST = 50;

const cacheDir = mkdtempSync(join(tmpdir(), 'flux-lora-bench-server-'));
const server = await startServer({
  ...DEFAULT_SERVER_OPTIONS,
  port: 0,
  version: 'bench',
  cacheDir,
  auth: {},
  logger: { level: 'info', stream: { write: () => undefined } },
});
await server.service.whenReady();

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return (await response.json()) as { id: string; status: string; metrics: { predict_time: number }; output: string[] | null };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const ms = (value: number) => `${value.toFixed(1)} ms`;

// 1. Overhead per synchronous prediction.
await post('/predictions', { input: SMALL });
const overheads: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  const prediction = await post('/predictions', { input: { ...SMALL, seed: i } });
  const wall = performance.now() - t0;
  if (prediction.status !== 'succeeded') throw new Error(`prediction ${i}: ${prediction.status}`);
  overheads.push(wall - prediction.metrics.predict_time * 1000);
}
console.log(
  `sync prediction overhead (256², 2 steps, webp data URI), 20 runs: p50 ${ms(percentile(overheads, 50))}, max ${ms(Math.max(...overheads))} (target ≤ 20 ms)`,
);

// 2. /health-check latency while a long prediction runs.
const long = post('/predictions', { input: LONG });
const latencies: number[] = [];
let done = false;
void long.then(() => (done = true));
while (!done) {
  const t0 = performance.now();
  const health = await fetch(`${server.url}/health-check`);
  await health.json();
  latencies.push(performance.now() - t0);
  await new Promise((resolve) => setTimeout(resolve, 5));
}
const longPrediction = await long;
console.log(
  `/health-check during a ${longPrediction.metrics.predict_time.toFixed(1)} s prediction (1440², 30 steps), ${latencies.length} requests: ` +
    `p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}, max ${ms(Math.max(...latencies))} (target p99 ≤ 50 ms)`,
);

// 3. A burst of async predictions with completion webhooks.
const completed = new Map<string, string>();
const receiver = createServer((req, res) => {
  let text = '';
  req.on('data', (chunk: Buffer) => (text += chunk.toString()));
  req.on('end', () => {
    const body = JSON.parse(text) as { id: string; status: string };
    completed.set(body.id, body.status);
    res.end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`;
let peakRss = process.memoryUsage().rss;
const rssBefore = peakRss;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
const t0 = performance.now();
const created = await Promise.all(
  Array.from({ length: BURST }, (_, i) =>
    post('/predictions', { input: { ...SMALL, seed: i }, webhook, webhook_events_filter: ['completed'] }, { prefer: 'respond-async' }),
  ),
);
while (completed.size < BURST && performance.now() - t0 < 300_000) await new Promise((resolve) => setTimeout(resolve, 20));
const elapsed = (performance.now() - t0) / 1000;
clearInterval(sampler);
const ids = new Set(created.map((p) => p.id));
const succeeded = [...completed].filter(([id, status]) => ids.has(id) && status === 'succeeded').length;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
console.log(
  `${BURST} async predictions at once: ${created.filter((p) => p.id !== undefined).length} accepted, ${succeeded} succeeded, ${BURST - succeeded} lost, ` +
    `in ${elapsed.toFixed(1)} s; RSS ${mib(rssBefore)} before, peak ${mib(peakRss)}`,
);

receiver.close();
await server.shutdown();
rmSync(cacheDir, { recursive: true, force: true });
