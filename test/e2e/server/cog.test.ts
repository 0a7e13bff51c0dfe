import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseProgressFromLogs } from 'replicate';
import sharp from 'sharp';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { INPUT_NAMES, INPUT_SCHEMA } from '../../../src/predictor/schema.js';
import { DEFAULT_SERVER_OPTIONS, startServer, type FluxServer } from '../../../src/server/app.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { inject, receiver, request, SLOW, SMALL, untilStatus, useServers, type Body } from './helpers.js';

const serve = useServers('server-cog-');
const tmp = useTempDir('server-cog-setup-');
let server: Awaited<ReturnType<typeof serve>>;
const async = { prefer: 'respond-async' };

beforeAll(async () => {
  server = await serve({ webhooks: { backoffMs: 20, token: 'hook-secret' } });
});

async function imageOf(dataUri: string) {
  expect(dataUri).toMatch(/^data:image\/webp;base64,/);
  return sharp(Buffer.from(dataUri.split(',')[1] ?? '', 'base64')).metadata();
}

describe('Cog contract: discovery, health and schema', () => {
  it('GET / lists the endpoints', async () => {
    const { status, body } = await inject(server, 'GET', '/');
    expect(status).toBe(200);
    expect(body).toMatchObject({ openapi_url: '/openapi.json', healthcheck_url: '/health-check', predictions_url: '/predictions', shutdown_url: '/shutdown' });
  });

  it('GET /health-check says STARTING during setup, then READY with the setup logs', async () => {
    const fresh = await startServer({
      ...DEFAULT_SERVER_OPTIONS,
      port: 0,
      version: 'test',
      cacheDir: join(tmp(), 'fresh-cache'),
      auth: {},
      logger: { level: 'silent' },
    });
    try {
      const first = await request(`${fresh.url}/health-check`, 'GET');
      expect(first.status).toBe(200);
      expect(first.body.status).toBe('STARTING');
      expect((await request(`${fresh.url}/predictions`, 'POST', { input: SMALL })).status).toBe(503);
      await fresh.service.whenReady();
      const ready = await request(`${fresh.url}/health-check`, 'GET');
      expect(ready.body).toMatchObject({ status: 'READY', setup: { status: 'succeeded' } });
      expect(ready.body.setup).toMatchObject({ logs: expect.stringContaining('Safety checker') });
    } finally {
      await fresh.shutdown();
    }
  });

  it('GET /health-check says UNHEALTHY while the inference engine restarts after a kill, then READY, and predictions go on', async () => {
    const pid = server.service.engine()?.pid as number;
    process.kill(pid, 'SIGKILL');
    const seen = new Set<string>();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { body } = await request(`${server.url}/health-check`, 'GET');
      seen.add(body.status as string);
      if (body.status === 'UNHEALTHY') expect(body.engine).toEqual({ state: 'restarting', restarts: expect.any(Number), last_stop: 'SIGKILL' });
      if (seen.has('UNHEALTHY') && body.status === 'READY') break;
      if (Date.now() > deadline) throw new Error(`health went through ${[...seen].join(', ')} only`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(server.service.engine()?.pid).not.toBe(pid);
    const { body } = await request(`${server.url}/predictions`, 'POST', { input: SMALL });
    expect(body.status).toBe('succeeded');
  });

  it('kill -9 of the engine mid-prediction fails only that prediction, saying where it was, and the queue goes on', async () => {
    expect((await request(`${server.url}/predictions/engine-killed`, 'PUT', { input: SLOW }, async)).status).toBe(202);
    const waiting = await request(`${server.url}/predictions/after-kill`, 'PUT', { input: SMALL }, async);
    expect(waiting.status).toBe(202);
    const deadline = Date.now() + 20_000;
    while (!(await request(`${server.url}/v1/predictions/engine-killed`, 'GET')).body.logs.includes('| 2/')) {
      if (Date.now() > deadline) throw new Error('the prediction did not reach step 2');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    process.kill(server.service.engine()?.pid as number, 'SIGKILL');
    const killed = await untilStatus(server, 'engine-killed', 'failed');
    expect(killed.body.status).toBe('failed');
    expect(killed.body.error).toMatch(/^engine stopped: SIGKILL during step \d+\/50$/);
    expect((await untilStatus(server, 'after-kill', 'succeeded')).body.status).toBe('succeeded');
  });

  it('GET /health-check says SETUP_FAILED with the reason when the weights are missing, and predictions are refused', async () => {
    const broken = await startServer({
      ...DEFAULT_SERVER_OPTIONS,
      port: 0,
      version: 'test',
      modelDir: join(tmp(), 'no-such-weights'),
      auth: {},
      logger: { level: 'silent' },
    });
    try {
      await broken.service.whenReady();
      const health = await request(`${broken.url}/health-check`, 'GET');
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'SETUP_FAILED', setup: { status: 'failed', logs: expect.stringContaining('no-such-weights') } });
      const refused = await request(`${broken.url}/predictions`, 'POST', { input: SMALL });
      expect(refused.status).toBe(503);
      expect(refused.body.detail).toContain('setup failed');
    } finally {
      await broken.shutdown();
    }
  });

  it('a server without a safety checker refuses, with 422 naming the input, requests that do not disable it (async ones too)', async () => {
    const unchecked = await serve({ safety: 'disabled' });
    for (const headers of [{}, async]) {
      const refused = await inject(unchecked, 'POST', '/predictions', { input: SMALL }, headers);
      expect(refused.status).toBe(422);
      expect(refused.body.detail).toEqual([
        { loc: ['body', 'input', 'disable_safety_checker'], msg: expect.stringContaining('safety checker is disabled on this server'), type: 'value_error' },
      ]);
    }
    expect((await request(`${unchecked.url}/health-check`, 'GET')).body.status).toBe('READY');
    const allowed = await request(`${unchecked.url}/predictions`, 'POST', { input: { ...SMALL, disable_safety_checker: true } });
    expect(allowed.body.status).toBe('succeeded');
  });

  it("GET /openapi.json publishes the predictor's input schema input for input, an array-of-URI output and Cog's paths", async () => {
    const { body } = await inject(server, 'GET', '/openapi.json');
    const schemas = (body.components as { schemas: Record<string, { properties: Record<string, unknown> }> }).schemas;
    expect(body.openapi).toBe('3.0.2');
    const published = INPUT_SCHEMA.properties as Record<string, Record<string, unknown>>;
    const choices = ['aspect_ratio', 'model', 'output_format', 'megapixels'];
    expect(INPUT_NAMES.filter((name) => published[name]?.enum !== undefined)).toEqual(choices);
    for (const name of INPUT_NAMES) {
      const { type, enum: values, title, ...rest } = published[name] as Record<string, unknown>;
      if (!choices.includes(name)) expect(schemas.Input?.properties[name], name).toEqual(published[name]);
      else {
        // Cog's form: the property refers to an enum component named like it (docs/http-api.md §A.15).
        expect(schemas.Input?.properties[name], name).toEqual({ allOf: [{ $ref: `#/components/schemas/${name}` }], ...rest });
        expect(schemas[name], name).toEqual({ title: name, description: 'An enumeration.', enum: values, type });
        expect(title).toBeDefined();
      }
    }
    expect({ ...schemas.Input, properties: undefined }).toEqual({ ...INPUT_SCHEMA, properties: undefined });
    expect((body.paths as Record<string, { post: Record<string, unknown> }>)['/predictions']?.post['x-cog-streaming']).toBe(true);
    expect(schemas.Output).toEqual({ type: 'array', title: 'Output', items: { type: 'string', format: 'uri' } });
    expect(schemas.Status).toMatchObject({ enum: ['starting', 'processing', 'succeeded', 'failed', 'canceled'] });
    expect(Object.keys(body.paths as object).sort()).toEqual([
      '/',
      '/health-check',
      '/predictions',
      '/predictions/{prediction_id}',
      '/predictions/{prediction_id}/cancel',
      '/shutdown',
    ]);
  });
});

describe('Cog contract: predictions', () => {
  it('POST /predictions runs synchronously: data-URI outputs, the reference log lines, tqdm progress and metrics', async () => {
    const { status, body } = await request(`${server.url}/predictions`, 'POST', { input: { ...SMALL, seed: 3, num_outputs: 2 } });
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'succeeded', error: null, input: { seed: 3 } });
    expect(body.id).toMatch(/^[a-z2-7]{26}$/);
    expect(body.output).toHaveLength(2);
    for (const uri of body.output ?? []) expect(await imageOf(uri)).toMatchObject({ format: 'webp', width: 256, height: 256 });
    expect(body.logs).toMatch(/^Using seed: 3$/m);
    expect(body.logs).toMatch(/^100%\|██████████\| 2\/2 \[/m);
    expect(parseProgressFromLogs(body.logs)).toEqual({ percentage: 1, current: 2, total: 2 });
    expect(body.metrics?.predict_time).toBeGreaterThan(0);
    expect(Date.parse(body.completed_at as string)).toBeGreaterThanOrEqual(Date.parse(body.started_at as string));
  });

  it('answers 422 with a detail list naming each bad input, unknown inputs included', async () => {
    const { status, body } = await inject(server, 'POST', '/predictions', { input: { num_outputs: 9, output_format: 'gif', colour: 'red' } });
    expect(status).toBe(422);
    const detail = body.detail as { loc: string[]; msg: string; type: string }[];
    expect(detail.map((d) => d.loc)).toEqual(
      expect.arrayContaining([
        ['body', 'input', 'prompt'],
        ['body', 'input', 'num_outputs'],
        ['body', 'input', 'output_format'],
        ['body', 'input', 'colour'],
      ]),
    );
    expect(detail.find((d) => d.loc[2] === 'prompt')).toMatchObject({ type: 'value_error.missing' });
    expect(detail.find((d) => d.loc[2] === 'output_format')?.msg).toContain('"webp", "jpg", "png"');
    expect(detail.find((d) => d.loc[2] === 'colour')?.msg).toBe('is not an input of this model');
  });

  it('a missing body, or one without input, is an empty request: 422 naming prompt (POST and PUT)', async () => {
    for (const [method, path] of [
      ['POST', '/predictions'],
      ['PUT', '/predictions/empty-body'],
    ] as const) {
      for (const body of [undefined, {}, { input: null }]) {
        const answer = await inject(server, method, path, body);
        expect(answer.status, `${method} ${JSON.stringify(body)}`).toBe(422);
        expect(answer.body.detail).toEqual([{ loc: ['body', 'input', 'prompt'], msg: 'is required', type: 'value_error.missing' }]);
      }
    }
  });

  it('Accept: text/event-stream answers the prediction as an event stream (logs, progress, output, done)', async () => {
    const response = await fetch(`${server.url}/predictions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json;q=0.5, text/event-stream;charset=utf-8' },
      body: JSON.stringify({ input: SMALL }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const text = await response.text();
    expect(text).toMatch(/^event: logs\ndata: Using seed: \d+$/m);
    expect(text).toMatch(/^event: progress\ndata: \{"output"/m);
    expect(text).toMatch(/^event: output\ndata: data:image\/webp;base64,/m);
    expect(text.endsWith('event: done\ndata: {}\n\n')).toBe(true);
  });

  it('a prediction that fails answers 200 with status failed and the reason (image URLs obey the SSRF rules)', async () => {
    const { status, body } = await request(`${server.url}/predictions`, 'POST', { input: { ...SMALL, image: 'http://127.0.0.1:9/photo.png' } });
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'failed', output: null });
    expect(body.error).toContain('input "image": cannot download');
    expect(body.error).toContain('loopback');
  });

  it('PUT /predictions/{id} is idempotent: the same id twice runs once', async () => {
    const first = await request(`${server.url}/predictions/put-twice`, 'PUT', { input: SMALL });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id: 'put-twice', status: 'succeeded' });
    const second = await request(`${server.url}/predictions/put-twice`, 'PUT', { input: SMALL });
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    const mismatch = await request(`${server.url}/predictions/put-twice`, 'PUT', { id: 'other', input: SMALL });
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.detail).toEqual([{ loc: ['body', 'id'], msg: 'prediction ID must match the ID supplied in the URL', type: 'value_error' }]);
  });

  it('Prefer: respond-async answers 202 and reports through the webhook: start, throttled logs, output, completed', async () => {
    const hooks = await receiver();
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const created = await request(`${server.url}/predictions`, 'POST', { input: SMALL, webhook: `${hooks.url}/hook` }, { ...async, traceparent });
    expect(created.status).toBe(202);
    expect(['starting', 'processing']).toContain(created.body.status);
    const received = await hooks.until((all) => all.some((r) => r.json().status === 'succeeded' && r.json().metrics !== null));
    const bodies = received.map((r) => r.json());
    for (const r of received)
      expect(r).toMatchObject({
        method: 'POST',
        url: '/hook',
        headers: { 'content-type': 'application/json', authorization: 'Bearer hook-secret', traceparent },
      });
    expect(bodies[0]).toMatchObject({ id: created.body.id, status: 'processing' });
    const output = bodies.find((b) => b.status === 'processing' && b.output !== null);
    expect(output?.output?.[0]).toMatch(/^data:image\/webp;base64,/);
    expect(bodies.at(-1)).toMatchObject({ status: 'succeeded', output: output?.output });
    expect(bodies.filter((b) => b.status === 'succeeded')).toHaveLength(1);
  });

  it('webhook_events_filter keeps only the chosen events, and the terminal webhook is retried with backoff until accepted', async () => {
    let failures = 2;
    const hooks = await receiver((_r, res) => {
      res.statusCode = failures-- > 0 ? 503 : 200;
      res.end();
    });
    const created = await request(`${server.url}/predictions`, 'POST', { input: SMALL, webhook: hooks.url, webhook_events_filter: ['completed'] }, async);
    expect(created.status).toBe(202);
    const received = await hooks.until((all) => all.length === 3);
    expect(received.map((r) => r.json().status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(hooks.received).toHaveLength(3);
  });

  it('a running prediction: BUSY, 409 for a sync request, PUT of its id answers 202 with its state, cancel stops it', async () => {
    const hooks = await receiver();
    const created = await request(`${server.url}/predictions/long-one`, 'PUT', { input: SLOW, webhook: hooks.url }, async);
    expect(created.status).toBe(202);
    const running = await untilStatus(server, 'long-one', 'processing');
    expect(running.body.status).toBe('processing');
    // Several progress lines before the cancel, so the throttling below is measured, not the first line.
    await hooks.until((all) => all.some((r) => (r.json().logs ?? '').split('%|').length > 4));
    expect((await request(`${server.url}/health-check`, 'GET')).body.status).toBe('BUSY');
    const busy = await request(`${server.url}/predictions`, 'POST', { input: SMALL });
    expect(busy.status).toBe(409);
    expect(busy.body).toEqual({ detail: 'Already running a prediction' });
    const again = await request(`${server.url}/predictions/long-one`, 'PUT', { input: SLOW }, async);
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ id: 'long-one', status: 'processing' });

    const cancel = await request(`${server.url}/predictions/long-one/cancel`, 'POST', {});
    expect(cancel).toMatchObject({ status: 200, body: {} });
    const received = await hooks.until((all) => all.some((r) => r.json().status === 'canceled'));
    expect(received.at(-1)?.json()).toMatchObject({ id: 'long-one', status: 'canceled', output: null });
    // Non-terminal webhooks were throttled: at least 0.5 s apart, never more than one per progress line (plus the start).
    const times = received.filter((r) => r.json().status === 'processing').map((r) => r.at);
    expect(times.length).toBeLessThanOrEqual((received.at(-1)?.json().logs ?? '').split('%|').length);
    times.slice(1).forEach((t, i) => expect(t - (times[i] ?? 0)).toBeGreaterThanOrEqual(400));
    expect((await request(`${server.url}/predictions/long-one/cancel`, 'POST')).status).toBe(404);
    expect((await request(`${server.url}/health-check`, 'GET')).body.status).toBe('READY');
  });

  it('cancels a synchronous prediction by id: the waiting request answers 200 canceled', async () => {
    const pending = request(`${server.url}/predictions/sync-cancel`, 'PUT', { input: SLOW });
    await untilStatus(server, 'sync-cancel', 'processing');
    expect((await request(`${server.url}/predictions/sync-cancel/cancel`, 'POST')).status).toBe(200);
    const answer = await pending;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id: 'sync-cancel', status: 'canceled', output: null });
  });

  it('a synchronous prediction whose client goes away is canceled', async () => {
    const client = new AbortController();
    const pending = fetch(`${server.url}/predictions/abandoned`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: SLOW }),
      signal: client.signal,
    });
    expect((await untilStatus(server, 'abandoned', 'processing')).body.status).toBe('processing');
    client.abort();
    await expect(pending).rejects.toThrow();
    expect((await untilStatus(server, 'abandoned', 'canceled')).body.status).toBe('canceled');
  });

  it('output_file_prefix: each file is PUT as multipart to prefix + name, and the output is that URL', async () => {
    const store = await receiver();
    const { body } = await request(`${server.url}/predictions`, 'POST', { input: SMALL, output_file_prefix: `${store.url}/bucket/run-` });
    expect(body).toMatchObject({ status: 'succeeded', output: [`${store.url}/bucket/run-out-0.webp`] });
    const [put] = store.received;
    expect(put?.method).toBe('PUT');
    expect(put?.url).toBe('/bucket/run-out-0.webp');
    expect(put?.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(put?.body.toString('latin1')).toContain('name="file"; filename="out-0.webp"');
  });

  it('logs are structured pino lines carrying the prediction id', async () => {
    const { body } = await request(`${server.url}/predictions`, 'POST', { input: SMALL });
    const lines = server.logs.map((line) => JSON.parse(line) as Body);
    expect(lines.find((l) => l.predictionId === body.id && l.msg === 'prediction finished')).toMatchObject({ status: 'succeeded', level: 30 });
  });
});

describe('Cog contract: --upload-url, a bounded queue and shutdown', () => {
  let uploads: Awaited<ReturnType<typeof receiver>>;
  let small: FluxServer;
  let uploadedDir: string;

  beforeAll(async () => {
    uploads = await receiver((r, res) => {
      if (r.url.includes('/refused/')) res.statusCode = 403;
      else res.setHeader('Location', `${r.url}?signature=secret`);
      res.end();
    });
    small = await serve({ uploadUrl: `${uploads.url}/files/signed`, queueSize: 1, maxRetained: 2 });
  });

  it('PUTs each output file under --upload-url/<id>/ and answers with its URL, the query string dropped', async () => {
    const { body } = await request(`${small.url}/predictions/uploaded`, 'PUT', { input: SMALL });
    uploadedDir = small.service.store.get('uploaded')?.spec.dir ?? '';
    expect(existsSync(join(uploadedDir, 'out-0.webp'))).toBe(true);
    expect(body).toMatchObject({ status: 'succeeded', output: [`${uploads.url}/files/signed/uploaded/out-0.webp`] });
    const put = uploads.received.find((r) => r.url === '/files/signed/uploaded/out-0.webp');
    expect(put).toMatchObject({ method: 'PUT', headers: { 'content-type': 'image/webp', 'x-prediction-id': 'uploaded' } });
    expect(await sharp(put?.body).metadata()).toMatchObject({ format: 'webp', width: 256 });
  });

  it('a refused upload fails the prediction, saying which file and where (without the query string)', async () => {
    const { status, body } = await request(`${small.url}/predictions/refused`, 'PUT', { input: SMALL });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      status: 'failed',
      output: null,
      error: `uploading out-0.webp to ${uploads.url}/files/signed/refused/out-0.webp failed: HTTP 403`,
    });
  });

  it('holds at most --queue-size waiting predictions: then 409 for Cog and 429 for the Replicate API', async () => {
    const running = await request(`${small.url}/predictions/q1`, 'PUT', { input: SLOW }, async);
    const waiting = await request(`${small.url}/predictions/q2`, 'PUT', { input: SMALL }, async);
    expect([running.status, waiting.status]).toEqual([202, 202]);
    expect(waiting.body.status).toBe('starting');
    const full = await request(`${small.url}/predictions`, 'POST', { input: SMALL }, async);
    expect(full.status).toBe(409);
    expect(full.body.detail).toContain('queue is full');
    expect((await request(`${small.url}/v1/predictions`, 'POST', { version: 'v', input: SMALL })).status).toBe(429);
    // A waiting prediction is canceled at once.
    expect((await request(`${small.url}/predictions/q2/cancel`, 'POST')).status).toBe(200);
    expect((await request(`${small.url}/v1/predictions/q2`, 'GET')).body).toMatchObject({ status: 'canceled', started_at: null });
    await request(`${small.url}/predictions/q1/cancel`, 'POST');
    expect((await untilStatus(small, 'q1', 'canceled')).body.status).toBe('canceled');
  });

  it('keeps at most --max-retained finished predictions: older ones are forgotten and their files removed', async () => {
    expect(small.service.store.get('q1')?.status).toBe('canceled');
    expect((await request(`${small.url}/v1/predictions/uploaded`, 'GET')).status).toBe(404);
    await vi.waitFor(() => expect(existsSync(uploadedDir)).toBe(false));
  });

  it('POST /shutdown answers {} and lets accepted predictions finish before the server closes', async () => {
    const hooks = await receiver();
    await untilStatus(small, 'q2', 'canceled');
    const created = await request(`${small.url}/predictions`, 'POST', { input: SMALL, webhook: hooks.url, webhook_events_filter: ['completed'] }, async);
    expect(created.status).toBe(202);
    expect(await request(`${small.url}/shutdown`, 'POST')).toMatchObject({ status: 200, body: {} });
    await small.closed;
    expect(hooks.received.map((r) => r.json().status)).toEqual(['succeeded']);
    await expect(fetch(`${small.url}/health-check`)).rejects.toThrow();
  });
});
