import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { startRedis } from '../../helpers/redis-server.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { freePort, listening, receiver, request, SLOW, SMALL, spawnCli, type Answer } from '../server/helpers.js';

/** 2 API nodes and 2 workers (child processes, built-in model) on a real redis-server. */
const tmp = useTempDir('scale-cluster-');
const MODEL = 'test/tiny';
/** About a second: several run at once keep both workers busy. */
const BUSY = { ...SMALL, width: 512, height: 512, num_inference_steps: 24 };
/** A few seconds: long enough to kill its worker mid-run. */
const MEDIUM = { ...SMALL, width: 768, height: 768, num_inference_steps: 40 };
const async = { prefer: 'respond-async' };

let redis: Awaited<ReturnType<typeof startRedis>>;
let api: string[];
let workers: ReturnType<typeof spawnCli>[];
let hooks: Awaited<ReturnType<typeof receiver>>;

interface Health {
  status: string;
  workers: { id: string; model: string; running: string | null }[];
}

async function health(url: string): Promise<Health> {
  return (await request(`${url}/health-check`, 'GET')).body as unknown as Health;
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Polls a prediction through `node` until it is terminal. */
function finished(node: string, id: string, timeoutMs = 60_000): Promise<Answer> {
  return until(
    `prediction ${id}`,
    async () => {
      const answer = await request(`${node}/v1/predictions/${id}`, 'GET');
      return ['succeeded', 'failed', 'canceled'].includes(answer.body.status) ? answer : undefined;
    },
    timeoutMs,
  );
}

/** The webhooks sent to /<tag> for a terminal state. */
function completedHooks(tag: string) {
  return hooks.received.filter((r) => r.url === `/${tag}` && ['succeeded', 'failed', 'canceled'].includes(r.json().status));
}

beforeAll(async () => {
  hooks = await receiver();
  redis = await startRedis(tmp());
  const env = { FLUX_LORA_CACHE_DIR: join(tmp(), 'cache') };
  const worker = () => spawnCli(['worker', '--redis', redis.url, '--model-name', MODEL], env);
  // The first worker installs the built-in model into the shared cache before the second starts.
  workers = [worker()];
  await until('the first worker', async () => (workers[0]?.out().includes('worker ready') ? true : undefined));
  workers.push(worker());
  // Each API node links Replicate API outputs to itself; any API node serves them.
  const ports = [await freePort(), await freePort()];
  const nodes = ports.map((port) => spawnCli(['serve', '--redis', redis.url, '--port', String(port), '--public-url', `http://127.0.0.1:${port}`], env));
  api = await Promise.all(nodes.map((node) => listening(node.out)));
  await until('both workers announced', async () => ((await health(api[0] as string)).workers.length === 2 ? true : undefined));
}, 120_000);

describe('2 API nodes and 2 workers on Redis', () => {
  it('runs 30 predictions created over both API nodes (sync, Prefer: wait, async) exactly once each, webhooks and outputs included', async () => {
    const [a, b] = api as [string, string];
    const webhook = (id: string) => ({ webhook: `${hooks.url}/${id}`, webhook_events_filter: ['start', 'completed'] });
    const created = await Promise.all(
      Array.from({ length: 30 }, async (_, i): Promise<Answer> => {
        const node = i % 2 === 0 ? a : b;
        const id = `multi-${i}`;
        const input = { ...SMALL, seed: i };
        if (i % 3 === 0) return request(`${node}/predictions/${id}`, 'PUT', { input, ...webhook(id) });
        if (i % 3 === 1) return request(`${node}/predictions/${id}`, 'PUT', { input, ...webhook(id) }, async);
        return request(`${node}/v1/models/${MODEL}/predictions`, 'POST', { input, ...webhook(id) }, { prefer: 'wait' });
      }),
    );
    const ids = created.map((answer) => answer.body.id);
    const tags = ids.map((_, i) => `multi-${i}`);
    expect(new Set(ids).size).toBe(30);
    // Each read through the other API node.
    const results = await Promise.all(ids.map((id, i) => finished(i % 2 === 0 ? b : a, id)));
    expect(results.map((r) => r.body.status)).toEqual(Array(30).fill('succeeded'));
    const outputs = results.flatMap((r) => r.body.output ?? []);
    expect(outputs).toHaveLength(30);
    for (const output of outputs) {
      // Data URIs (Cog), or links to the creating API node (Replicate API), fetched here from the other one.
      const bytes = output.startsWith('data:')
        ? Buffer.from(output.split(',')[1] ?? '', 'base64')
        : Buffer.from(await (await fetch(output.startsWith(a) ? output.replace(a, b) : output.replace(b, a))).arrayBuffer());
      expect(await sharp(bytes).metadata()).toMatchObject({ format: 'webp', width: 256, height: 256 });
    }
    expect(outputs.filter((o) => o.startsWith('http://')).length).toBe(10);
    // Either API node lists them all, newest first, 20 a page.
    const list = await request(`${b}/v1/predictions`, 'GET');
    expect((list.body.results as unknown as { id: string }[]).map((p) => p.id)).toHaveLength(20);
    expect(list.body.next).toBe(`${b}/v1/predictions?cursor=20`);
    const second = await request(list.body.next as string, 'GET');
    expect([...(list.body.results as unknown as { id: string }[]), ...(second.body.results as unknown as { id: string }[])].map((p) => p.id).sort()).toEqual(
      [...ids].sort(),
    );
    await hooks.until(() => tags.every((tag) => completedHooks(tag).length > 0));
    await new Promise((resolve) => setTimeout(resolve, 500)); // a duplicate would have come by now
    for (const [i, tag] of tags.entries()) {
      expect(completedHooks(tag).map((r) => r.json().id)).toEqual([ids[i]]);
      expect(hooks.received.filter((r) => r.url === `/${tag}` && r.json().status === 'processing')).toHaveLength(1);
    }
    const finishedBy = workers.map(
      (w) =>
        w
          .out()
          .split('\n')
          .filter((line) => line.includes('"prediction finished"') && ids.some((id) => line.includes(`"predictionId":"${id}"`))).length,
    );
    expect(finishedBy.reduce((x, y) => x + y)).toBe(30);
    expect(Math.min(...finishedBy)).toBeGreaterThan(0);
  });

  it('streams progress from the other API node, and a cancel through the other API node stops the running job', async () => {
    const [a, b] = api as [string, string];
    const created = await request(`${a}/v1/predictions`, 'POST', { input: SLOW });
    const streamUrl = created.body.urls.stream.replace(a, b);
    const stream = await fetch(streamUrl, { headers: { accept: 'text/event-stream' } });
    const reader = stream.body?.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    let events = '';
    while (!events.includes('event: progress')) events += new TextDecoder().decode((await reader.read()).value);
    const canceled = await request(`${b}/v1/predictions/${created.body.id}/cancel`, 'POST');
    expect(canceled.body.status).toBe('canceled');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      events += new TextDecoder().decode(value);
    }
    expect(events).toContain('event: done\ndata: {"reason":"canceled"}');
    const steps = [...events.matchAll(/"step":(\d+),"total":50/g)].map((m) => Number(m[1]));
    expect(Math.max(...steps)).toBeLessThan(50);
    const after = await request(`${a}/v1/predictions/${created.body.id}`, 'GET');
    expect(after.body.status).toBe('canceled');
  });

  it('a worker killed with -9 mid-job: its job is taken back by heartbeat and finished once on the other worker', async () => {
    const [a, b] = api as [string, string];
    const id = 'orphaned';
    await request(`${a}/predictions/${id}`, 'PUT', { input: MEDIUM, webhook: `${hooks.url}/${id}`, webhook_events_filter: ['completed'] }, async);
    const runner = await until('a worker running it', async () => (await health(b)).workers.find((w) => w.running === id));
    await until('a step', async () => ((await request(`${b}/v1/predictions/${id}`, 'GET')).body.logs.includes('| 1/40') ? true : undefined));
    const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(runner.id)?.[1]);
    const victim = workers.find((w) => w.child.pid === pid);
    expect(victim).toBeDefined();
    victim?.child.kill('SIGKILL');
    const result = await finished(b, id);
    expect(result.body.status).toBe('succeeded');
    expect(result.body.logs).toMatch(new RegExp(`worker ${runner.id} stopped \\(no heartbeat for 2 s\\) during step \\d+/40; retrying on another worker`));
    await hooks.until(() => completedHooks(id).length > 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(completedHooks(id).map((r) => r.json().status)).toEqual(['succeeded']);
    const survivor = workers.find((w) => w !== victim) as (typeof workers)[number];
    expect(survivor.out()).toContain(`"predictionId":"${id}","attempt":2`);
  });

  it('while Redis restarts under load, API nodes answer 503 naming it, then recover, and the predictions finish once', async () => {
    const [a, b] = api as [string, string];
    const ids = ['r-0', 'r-1', 'r-2', 'r-3'];
    for (const [i, id] of ids.entries()) {
      const node = i % 2 === 0 ? a : b;
      expect(
        (await request(`${node}/predictions/${id}`, 'PUT', { input: BUSY, webhook: `${hooks.url}/${id}`, webhook_events_filter: ['completed'] }, async)).status,
      ).toBe(202);
    }
    await until('one running', async () => ((await request(`${a}/v1/predictions/r-0`, 'GET')).body.status === 'processing' ? true : undefined));
    await redis.kill();
    for (const node of [a, b]) {
      const refused = await request(`${node}/v1/predictions`, 'POST', { input: SMALL });
      expect(refused.status).toBe(503);
      expect(refused.body.detail).toBe(`Redis at ${redis.url} is unreachable, so predictions cannot be created or read; retry when it is back`);
      expect((await request(`${node}/v1/predictions/r-0`, 'GET')).status).toBe(503);
      expect((await health(node)).status).toBe('UNHEALTHY');
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await redis.start();
    await until('the API nodes to recover', async () => ((await request(`${b}/v1/predictions/r-0`, 'GET')).status === 200 ? true : undefined));
    const results = await Promise.all(ids.map((id) => finished(a, id)));
    expect(results.map((r) => r.body.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    await hooks.until(() => ids.every((id) => completedHooks(id).length > 0));
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const id of ids) expect(completedHooks(id)).toHaveLength(1);
    expect((await request(`${a}/predictions`, 'POST', { input: SMALL })).body.status).toBe('succeeded');
  });

  it('SIGTERM drains a worker: its running job finishes, it takes no other and exits 0; with no worker left, creates get 503 saying so', async () => {
    const [a, b] = api as [string, string];
    // The worker left by the kill test above.
    const alive = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    expect(alive).toHaveLength(1);
    const survivor = alive[0] as (typeof workers)[number];
    await request(`${a}/predictions/drained`, 'PUT', { input: MEDIUM }, async);
    await until('it running', async () => ((await health(b)).workers.some((w) => w.running === 'drained') ? true : undefined));
    await request(`${b}/predictions/left-waiting`, 'PUT', { input: SMALL }, async);
    survivor.child.kill('SIGTERM');
    await until('it draining', async () => ((await request(`${b}/v1/predictions`, 'POST', { input: SMALL })).status === 503 ? true : undefined));
    expect((await request(`${b}/v1/predictions`, 'POST', { input: SMALL })).body.detail).toBe(`no worker serves ${MODEL} now (1 draining)`);
    const [result, code] = await Promise.all([finished(a, 'drained'), survivor.exited]);
    expect(result.body.status).toBe('succeeded');
    expect(code).toBe(0);
    expect(survivor.out()).toContain('draining: finishing the running job, taking no other');
    expect((await request(`${a}/v1/predictions/left-waiting`, 'GET')).body.status).toBe('starting');
    await until('no worker announced', async () => ((await health(a)).workers.length === 0 ? true : undefined));
    const refused = await request(`${a}/v1/predictions`, 'POST', { input: SMALL });
    expect(refused.status).toBe(503);
    expect(refused.body.detail).toBe('no worker is running: start one with flux-lora worker --redis … --model-name owner/name');
  });
});
