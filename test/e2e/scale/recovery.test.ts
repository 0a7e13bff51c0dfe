import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterService } from '../../../src/scale/cluster-service.js';
import { ClusterStore, splitRecord } from '../../../src/scale/cluster-store.js';
import { BULL_PREFIX, predictQueueName } from '../../../src/scale/queues.js';
import { connect } from '../../../src/scale/redis.js';
import { DEFAULT_MAX_PIXELS } from '../../../src/images/decode.js';
import { DEFAULT_IMAGE_SOURCE } from '../../../src/images/source.js';
import { DEFAULT_SERVER_OPTIONS, startHttpServer, type HttpServer } from '../../../src/server/app.js';
import { toRecord } from '../../../src/server/prediction-record.js';
import { Prediction } from '../../../src/server/prediction.js';
import { DEFAULT_WEBHOOK_OPTIONS } from '../../../src/server/webhooks.js';
import { startRedis } from '../../helpers/redis-server.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { receiver, request, type Answer } from '../server/helpers.js';

/**
 * The heartbeat rule on its own: predictions claimed by workers that no longer announce
 * themselves (ids that never ran, as after a kill -9), written into a real Redis the way a
 * worker writes them, and one real API node watching.
 */
const tmp = useTempDir('scale-recovery-');
const MODEL = 'test/tiny';
let store: ClusterStore;
let redisUrl: string;
let api: HttpServer<ClusterService>;
let hooks: Awaited<ReturnType<typeof receiver>>;
const closers: (() => unknown)[] = [];

beforeAll(async () => {
  hooks = await receiver();
  const redis = await startRedis(tmp());
  redisUrl = redis.url;
  const connection = connect(redis.url, 'worker');
  closers.push(() => connection.disconnect());
  store = new ClusterStore(connection);
  api = await startHttpServer(
    { ...DEFAULT_SERVER_OPTIONS, port: 0, version: 'test', auth: {}, logger: { level: 'silent' } },
    (log) =>
      new ClusterService({
        redisUrl: redis.url,
        queueSize: 8,
        retentionMs: 60_000,
        imageSource: { ...DEFAULT_IMAGE_SOURCE, maxPixels: DEFAULT_MAX_PIXELS, allowLocalFiles: false, allowPrivateNetworks: true },
        webhooks: { ...DEFAULT_WEBHOOK_OPTIONS, backoffMs: 20, userAgent: 'test' },
        log,
      }),
  );
  closers.push(() => api.shutdown());
  await api.service.whenReady();
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

/** Claims and starts the prediction as worker `worker` would, up to step `step` of 8. */
async function runAs(prediction: Prediction, worker: string, attempt: number, step: number): Promise<void> {
  const { id, key } = prediction.spec;
  expect(await store.change(id, key, { status: ['starting'], attempt, worker: '' }, { worker })).toBeGreaterThan(0);
  prediction.status = 'starting';
  prediction.start();
  const progress = { type: 'progress' as const, progress: { output: 0, outputs: 1, step, total: 8, elapsedMs: 100 } };
  const guard = { status: ['starting' as const, 'processing' as const], attempt, worker };
  expect(await store.change(id, key, guard, { status: 'processing', state: splitRecord(toRecord(prediction)).state, history: [progress] })).toBeGreaterThan(0);
}

async function until(id: string, check: (answer: Answer) => boolean): Promise<Answer> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const answer = await request(`${api.url}/v1/predictions/${id}`, 'GET');
    if (check(answer)) return answer;
    if (Date.now() > deadline) throw new Error(`prediction ${id}: ${answer.text.slice(0, 300)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('a worker that stops announcing itself', () => {
  it('gets its prediction queued again once, then failed with the reason when the retry stops too; a stale write is refused', async () => {
    const prediction = new Prediction({
      id: 'lost-twice',
      key: '0123456789abcdef0123456789abcdef',
      api: 'replicate',
      input: { prompt: 'a red circle' },
      webhook: { url: `${hooks.url}/lost-twice`, events: new Set(['completed']), headers: {} },
      output: { kind: 'data-uri' },
      baseUrl: api.url,
      dir: '',
    });
    expect(await store.create(toRecord(prediction), MODEL, 60_000)).toBe(true);
    await runAs(prediction, 'gone-1', 1, 3);

    const requeued = await until('lost-twice', (a) => a.body.status === 'starting');
    expect(requeued.body.logs).toContain('worker gone-1 stopped (no heartbeat for 2 s) during step 3/8; retrying on another worker\n');
    expect(await store.snapshot('lost-twice')).toMatchObject({ attempt: 2, worker: '' });
    // Its second attempt waits in its model's queue for another worker.
    const connection = connect(redisUrl, 'worker');
    const queue = new Queue(predictQueueName(MODEL), { connection, prefix: BULL_PREFIX });
    expect((await queue.getJob('lost-twice-2'))?.data).toEqual({ id: 'lost-twice', attempt: 2 });
    await queue.close();
    connection.disconnect();

    await runAs(prediction, 'gone-2', 2, 5);
    const failed = await until('lost-twice', (a) => a.body.status === 'failed');
    expect(failed.body.error).toBe('worker gone-2 stopped (no heartbeat for 2 s) during step 5/8, and it had been retried once already');

    // The stopped worker's own last write, had it come late, changes nothing.
    prediction.succeed([], {});
    const stale = { status: ['starting' as const, 'processing' as const], attempt: 2, worker: 'gone-2' };
    expect(await store.change('lost-twice', prediction.spec.key, stale, { status: 'succeeded', state: splitRecord(toRecord(prediction)).state })).toBe(0);
    expect((await request(`${api.url}/v1/predictions/lost-twice`, 'GET')).body.status).toBe('failed');

    await hooks.until((all) => all.some((r) => r.url === '/lost-twice'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hooks.received.filter((r) => r.url === '/lost-twice').map((r) => r.json().status)).toEqual(['failed']);
  });
});
