/** The unmodified official `replicate` npm client, pointed at flux-lora with `baseUrl`, end to end on the built-in model. */
import { createServer } from 'node:net';
import Replicate, { parseProgressFromLogs, type FileOutput, type Prediction } from 'replicate';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FluxServer } from '../../../src/server/app.js';
import { SLOW, request, SMALL, untilStatus, useServers } from './helpers.js';

const serve = useServers('server-replicate-');

/** A port nothing listens on now (so --public-url can name it before the server starts). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function webpOf(bytes: ArrayBuffer | Buffer) {
  return sharp(Buffer.from(bytes as ArrayBuffer)).metadata();
}

describe('the official replicate client against flux-lora (no token, data-URI outputs)', () => {
  let server: FluxServer;
  let replicate: Replicate;

  beforeAll(async () => {
    server = await serve();
    replicate = new Replicate({ auth: '', baseUrl: `${server.url}/v1` });
  });

  it('run("owner/name:version") returns FileOutputs whose blobs are the images; progress comes from the tqdm log lines', async () => {
    const seen: Prediction[] = [];
    const output = (await replicate.run('acme/flux-lora:0123abcd', { input: { ...SMALL, num_outputs: 2 } }, (p) => seen.push(p))) as FileOutput[];
    expect(output).toHaveLength(2);
    for (const file of output) {
      expect(file.url().protocol).toBe('data:');
      const blob = await file.blob();
      expect(blob.type).toBe('image/webp');
      expect(await webpOf(await blob.arrayBuffer())).toMatchObject({ format: 'webp', width: 256, height: 256 });
    }
    const last = seen.at(-1) as Prediction;
    expect(last).toMatchObject({ status: 'succeeded', version: '0123abcd', urls: { get: `${server.url}/v1/predictions/${last.id}` } });
    expect(parseProgressFromLogs(last)).toEqual({ percentage: 1, current: 2, total: 2 });
  });

  it('run("owner/name") goes through /v1/models/{owner}/{name}/predictions', async () => {
    const output = (await replicate.run('someone/any-model', { input: SMALL })) as FileOutput[];
    expect(await webpOf(await (await output[0]?.blob())!.arrayBuffer())).toMatchObject({ width: 256 });
  });

  it('predictions.create, predictions.get and wait()', async () => {
    const created = await replicate.predictions.create({ version: 'v1', input: { ...SMALL, seed: 9 } });
    expect(['starting', 'processing']).toContain(created.status);
    const done = await replicate.wait(created, { interval: 50 });
    expect(done).toMatchObject({ id: created.id, status: 'succeeded', input: { seed: 9 } });
    expect(done.metrics?.predict_time).toBeGreaterThan(0);
    const fetched = await replicate.predictions.get(created.id);
    expect(fetched).toEqual(done);
  });

  it('Prefer: wait=1 on a longer prediction answers `starting` when the window closes; predictions.cancel stops it', async () => {
    const created = await replicate.predictions.create({ model: 'acme/flux-lora', input: SLOW, wait: 1 });
    expect(created.status).toBe('starting');
    expect(created.model).toBe('acme/flux-lora');
    const canceled = await replicate.predictions.cancel(created.id);
    expect(canceled).toMatchObject({ id: created.id, status: 'canceled', output: null });
  });

  it('an aborted run() cancels its prediction', async () => {
    const controller = new AbortController();
    let id = '';
    const run = replicate.run('acme/flux-lora', { input: SLOW, wait: { mode: 'poll', interval: 50 }, signal: controller.signal }, (p) => {
      id = p.id;
      if (p.status === 'processing') controller.abort();
    });
    expect(await run).toBeNull();
    expect((await replicate.predictions.get(id)).status).toBe('canceled');
  });

  it('Buffer inputs: the client falls back to a data URI (this server stores no uploads) and the img2img prediction runs', async () => {
    const png = await sharp({ create: { width: 320, height: 256, channels: 3, background: '#3080c0' } })
      .png()
      .toBuffer();
    const seen: Prediction[] = [];
    await replicate.run('acme/flux-lora', { input: { ...SMALL, image: png, prompt_strength: 0.5 } }, (p) => seen.push(p));
    expect(seen.at(-1)?.status).toBe('succeeded');
    expect(seen.at(-1)?.logs).toContain('[!] img2img mode');
  });

  it('a failed prediction throws "Prediction failed: …"; a bad input is a 422 naming it', async () => {
    await expect(replicate.run('acme/flux-lora', { input: { ...SMALL, image: 'http://127.0.0.1:9/x.png' } })).rejects.toThrow(
      /^Prediction failed: input "image": cannot download/,
    );
    await expect(replicate.run('acme/flux-lora', { input: { ...SMALL, num_outputs: 7 } })).rejects.toThrow(/status 422 .*num_outputs/);
  });
});

describe('with a token, --model-name and --public-url', () => {
  let server: FluxServer;
  let replicate: Replicate;

  beforeAll(async () => {
    const port = await freePort();
    server = await serve({ port, auth: { token: 'r8_secret' }, modelName: 'acme/flux-lora', publicUrl: `http://127.0.0.1:${port}` });
    replicate = new Replicate({ auth: 'r8_secret', baseUrl: `${server.url}/v1` });
  });

  it('needs the bearer token for predictions (Cog routes included) but not for the health check', async () => {
    const anonymous = new Replicate({ auth: '', baseUrl: `${server.url}/v1` });
    await expect(anonymous.predictions.create({ version: 'v', input: SMALL })).rejects.toThrow(/status 401/);
    const wrong = new Replicate({ auth: 'r8_wrong', baseUrl: `${server.url}/v1` });
    await expect(wrong.predictions.get('whatever')).rejects.toThrow(/status 401/);
    expect((await request(`${server.url}/predictions`, 'POST', { input: SMALL })).status).toBe(401);
    expect((await request(`${server.url}/health-check`, 'GET')).status).toBe(200);
  });

  it('serves outputs at stable URLs readable without the token', async () => {
    const [url] = (await replicate.run('acme/flux-lora', { input: SMALL })) as string[];
    expect(url).toMatch(new RegExp(`^${server.url}/outputs/[0-9a-f]{32}/out-0\\.webp$`));
    const response = await fetch(url as string);
    expect(response.headers.get('content-type')).toBe('image/webp');
    expect(await webpOf(await response.arrayBuffer())).toMatchObject({ format: 'webp', width: 256 });
    expect((await fetch(`${url}x`)).status).toBe(404);
  });

  it('answers only for --model-name', async () => {
    await expect(replicate.run('other/model', { input: SMALL })).rejects.toThrow(/status 404 .*other\/model is not served here/);
    await expect(replicate.run('other/model:v2', { input: SMALL })).resolves.toHaveLength(1);
  });

  it('stream(): logs, per-step progress events, the output and done, from urls.stream without the token', async () => {
    const events: { event: string; data: string }[] = [];
    for await (const event of replicate.stream('acme/flux-lora', { input: SMALL })) events.push({ event: event.event, data: String(event.data) });
    const kinds = events.map((e) => e.event);
    expect(kinds).toContain('logs');
    expect(events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data).step)).toEqual([1, 2]);
    expect(events.find((e) => e.event === 'output')?.data).toMatch(/\/outputs\/[0-9a-f]{32}\/out-0\.webp$/);
    expect(kinds.at(-1)).toBe('done');
  });

  it('the stream of a canceled prediction ends with done {"reason":"canceled"}', async () => {
    const created = await replicate.predictions.create({ model: 'acme/flux-lora', input: SLOW });
    await untilStatus(server, created.id, 'processing', { authorization: 'Bearer r8_secret' });
    await replicate.predictions.cancel(created.id);
    const text = await (await fetch(created.urls.stream as string)).text();
    expect(text).toMatch(/event: done\ndata: \{"reason":"canceled"\}\n\n$/);
  });
});
