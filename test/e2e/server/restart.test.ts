import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDir } from '../../helpers/temp-dir.js';
import { freePort, listening, receiver, type Received, request, SLOW, SMALL, spawnCli, untilHealthy, untilStatus } from './helpers.js';

const tmp = useTempDir('server-restart-');

describe('a server with a data folder, killed and started again', () => {
  it('answers for finished predictions and serves their files, fails the one running, runs those waiting and sends the webhooks due', async () => {
    // Until the restart, the webhook of "hook-due" fails (so it is still due when the server dies).
    let restartedAt = Infinity;
    const hooks = await receiver((request, response) => {
      response.statusCode = request.at < restartedAt && request.json().id === 'hook-due' ? 503 : 200;
      response.end();
    });
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = { FLUX_LORA_CACHE_DIR: join(tmp(), 'cache'), FLUX_LORA_DATA_DIR: join(tmp(), 'data') };
    const args = ['serve', '--port', String(port), '--public-url', base];
    const async = { prefer: 'respond-async' };
    const webhook = (id: string) => ({ webhook: `${hooks.url}/${id}`, webhook_events_filter: ['completed'] });

    const first = spawnCli(args, env);
    await untilHealthy(await listening(first.out));
    const done = await request(`${base}/v1/predictions`, 'POST', { input: SMALL }, { prefer: 'wait' });
    expect(done.body.status).toBe('succeeded');
    const [file] = done.body.output as string[];
    const bytes = Buffer.from(await (await fetch(file as string)).arrayBuffer());
    expect((await request(`${base}/predictions/hook-due`, 'PUT', { input: SMALL, ...webhook('hook-due') })).body.status).toBe('succeeded');
    await hooks.until((all) => all.some((r) => r.url === '/hook-due'));
    expect((await request(`${base}/predictions/running`, 'PUT', { input: SLOW, ...webhook('running') }, async)).status).toBe(202);
    for (const id of ['queued-1', 'queued-2']) {
      expect((await request(`${base}/predictions/${id}`, 'PUT', { input: SMALL, ...webhook(id) }, async)).status).toBe(202);
    }
    const running = await untilStatus({ url: base }, 'running', 'processing');
    expect(running.body.status).toBe('processing');
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe(-1);

    restartedAt = Date.now();
    const second = spawnCli(args, env);
    await untilHealthy(await listening(second.out));
    expect(second.out()).toContain('restored 5 predictions (2 waiting to run)');

    const again = await request(`${base}/v1/predictions/${done.body.id}`, 'GET');
    expect(again.body).toMatchObject({ status: 'succeeded', output: [file], logs: done.body.logs });
    const served = await fetch(file as string);
    expect(served.headers.get('content-type')).toBe('image/webp');
    expect(Buffer.from(await served.arrayBuffer()).equals(bytes)).toBe(true);

    expect((await request(`${base}/v1/predictions/running`, 'GET')).body).toMatchObject({ status: 'failed', error: 'interrupted by restart' });
    for (const id of ['queued-1', 'queued-2']) {
      const queued = await untilStatus({ url: base }, id, 'succeeded');
      expect(queued.body).toMatchObject({ status: 'succeeded', output: [expect.stringMatching(/^data:image\/webp;base64,/)] });
    }
    const since = (all: Received[], id: string) => all.filter((r) => r.url === `/${id}` && r.at >= restartedAt);
    const delivered = await hooks.until((all) => ['hook-due', 'running', 'queued-1', 'queued-2'].every((id) => since(all, id).length > 0));
    const after = (id: string) => since(delivered, id).map((r) => r.json().status);
    expect(after('running')).toEqual(['failed']);
    expect(after('queued-1')).toEqual(['succeeded']);
    expect(after('queued-2')).toEqual(['succeeded']);
    expect(after('hook-due')).toEqual(['succeeded']);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
