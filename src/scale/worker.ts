/**
 * A worker of a scaled deployment (`flux-lora worker --redis … --model-name owner/name`): one
 * predictor (and its engine process) taking the jobs of its model from BullMQ, one at a time.
 * It announces itself (model, variants, safety checker, the job it runs) with a heartbeat; it
 * claims a job's prediction before running it and writes each change through the guarded
 * script (./cluster-store.ts), so once its job was taken back or canceled it stops writing and
 * aborts. Cancels come through the cancel channel and stop the run after its current step.
 * Outputs go where the prediction asked (uploads, output_file_prefix) and, for data URIs and
 * links served by the API nodes, into Redis for the retention time. SIGTERM drains it: the
 * running job finishes, no other is taken.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ImageSourceOptions } from '../images/source.js';
import { Predictor, type PredictorOptions } from '../predictor/predictor.js';
import { checkInput } from '../server/input-check.js';
import { deliverOutputs, type OutputFile } from '../server/outputs.js';
import { fromRecord, toRecord, type PredictionRecord } from '../server/prediction-record.js';
import type { Prediction, PredictionEvent } from '../server/prediction.js';
import { endPrediction, predictOptions, type Outcome } from '../server/run-prediction.js';
import { DEFAULT_WEBHOOK_OPTIONS } from '../server/webhooks.js';
import { CHANNELS, ClusterStore, splitRecord, type Change, type Snapshot, type WorkerInfo } from './cluster-store.js';
import { WebhookQueue } from './cluster-webhooks.js';
import { HEARTBEAT } from './heartbeat.js';
import { BULL_PREFIX, predictQueueName, type PredictJob } from './queues.js';
import { connect } from './redis.js';

/** Output files up to this size go into Redis; larger ones need --upload-url on the API nodes. */
export const MAX_REDIS_OUTPUT_BYTES = 16 * 2 ** 20;

export interface WorkerOptions {
  redisUrl: string;
  /** The owner/name it serves. */
  model: string;
  predictor: PredictorOptions & { imageSource: ImageSourceOptions & { maxPixels: number } };
  /** One JSON line per event worth logging. */
  log(fields: Record<string, unknown>, message: string): void;
}

export interface FluxWorker {
  id: string;
  /** Finishes the running job, takes no other, and stops. */
  drain(): Promise<void>;
}

export async function startWorker(options: WorkerOptions): Promise<FluxWorker> {
  const predictor = await Predictor.create({ ...options.predictor, log: (line) => options.log({}, line) });
  const id = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const redis = connect(options.redisUrl, 'worker');
  const subscriber = connect(options.redisUrl, 'subscriber');
  const bull = connect(options.redisUrl, 'worker');
  const store = new ClusterStore(redis);
  const webhooks = new WebhookQueue(redis, DEFAULT_WEBHOOK_OPTIONS);
  const workDir = await mkdtemp(join(tmpdir(), 'flux-lora-worker-'));
  const info: WorkerInfo = {
    id,
    model: options.model,
    variants: predictor.variants,
    safetyDisabled: predictor.safety === 'disabled',
    host: hostname(),
    pid: process.pid,
    running: null,
    draining: false,
  };
  const announce = () => store.announce(info, HEARTBEAT.ttlMs).catch(() => undefined);
  await announce();
  const heartbeat = setInterval(() => void announce(), HEARTBEAT.intervalMs);

  let current: Prediction | undefined;
  await subscriber.subscribe(CHANNELS.cancel);
  subscriber.on('message', (_channel: string, predictionId: string) => {
    if (current?.id === predictionId) current.abort.abort();
  });

  const run = async (job: Job<PredictJob>) => {
    const { id: predictionId, attempt } = job.data;
    const snapshot = await handedOver(store, predictionId, attempt);
    const { key } = snapshot.record;
    // Only one worker gets a job's prediction, and only while it waits with this attempt.
    if ((await store.change(predictionId, key, { status: ['starting'], attempt, worker: '' }, { worker: id })) === 0) return;
    const dir = join(workDir, key);
    const prediction = fromRecord(snapshot.record, dir);
    current = prediction;
    info.running = predictionId;
    void announce();
    const log = (fields: Record<string, unknown>, message: string) => options.log({ predictionId, attempt, ...fields }, message);
    const writes = mirrorToRedis(prediction, store, webhooks, { attempt, worker: id }, log);
    try {
      const input = await checkInput(prediction.spec.input, (raw) => predictor.validate(raw), options.predictor.imageSource);
      const outcome: Outcome = await predictor.enqueue(input, predictOptions(prediction, dir)).then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
      await endPrediction(prediction, outcome, (files) => deliver(prediction, files, store));
    } catch (error) {
      prediction.fail((error as Error).message);
    }
    await writes();
    current = undefined;
    info.running = null;
    void announce();
    await rm(dir, { recursive: true, force: true });
    log({ status: prediction.status, error: prediction.error ?? undefined }, 'prediction finished');
  };

  const worker = new Worker<PredictJob>(predictQueueName(options.model), run, {
    connection: bull,
    prefix: BULL_PREFIX,
    concurrency: 1,
    // Lost jobs are found by the heartbeat (and queued again as a new attempt), not by BullMQ's stall check.
    maxStalledCount: 0,
  });
  worker.on('error', () => undefined);
  options.log({ worker: id, model: options.model, variants: info.variants }, 'worker ready');

  let draining: Promise<void> | undefined;
  const drain = () => {
    draining ??= (async () => {
      info.draining = true;
      await announce();
      options.log({ worker: id, running: info.running }, 'draining: finishing the running job, taking no other');
      await worker.close();
      clearInterval(heartbeat);
      await store.retire(id).catch(() => undefined);
      await Promise.all([predictor.close(), webhooks.close()]);
      for (const connection of [redis, subscriber, bull] as Redis[]) connection.disconnect();
      await rm(workDir, { recursive: true, force: true });
    })();
    return draining;
  };
  return { id, drain };
}

/**
 * The prediction of a job. The API node queues a job just before it saves the prediction (or
 * hands it to the job's attempt), so it waits a moment for that; if it is still not there, the
 * job fails and BullMQ tries it again later.
 */
async function handedOver(store: ClusterStore, id: string, attempt: number): Promise<Snapshot> {
  for (const pause of [2, 4, 8, 16, 32, 64, 128, 0]) {
    const snapshot = await store.snapshot(id);
    if (snapshot !== undefined && snapshot.attempt >= attempt) return snapshot;
    await sleep(pause);
  }
  throw new Error(`prediction ${id} is not saved for attempt ${attempt} yet`);
}

type WebhookEvent = 'start' | 'logs' | 'output' | 'completed';

interface Batch {
  change: Change;
  webhooks: { event: WebhookEvent; moment: PredictionRecord }[];
}

/**
 * Writes each change of the worker's copy of a prediction to Redis, in order, guarded by the
 * attempt and worker (a refused write means the job was taken back: the run is aborted), and
 * adds the webhooks due. Changes made while a write is under way go together in the next one.
 * Returns a function that waits for the writes under way.
 */
function mirrorToRedis(
  prediction: Prediction,
  store: ClusterStore,
  webhooks: WebhookQueue,
  owner: { attempt: number; worker: string },
  log: (fields: Record<string, unknown>, message: string) => void,
): () => Promise<void> {
  const { id, key } = prediction.spec;
  const guard = { status: ['starting' as const, 'processing' as const], ...owner };
  let chain = Promise.resolve();
  let waiting: Batch | null = null;
  const send = async (batch: Batch) => {
    try {
      if ((await store.change(id, key, guard, batch.change)) === 0) {
        if (!prediction.abort.signal.aborted) log({}, 'the prediction was taken back or canceled elsewhere: stopping');
        prediction.abort.abort();
        return;
      }
      for (const { event, moment } of batch.webhooks) await webhooks.due(moment, event);
    } catch (error) {
      log({ err: (error as Error).message }, 'writing to Redis failed');
    }
  };
  const write = (change: Change, ...events: WebhookEvent[]) => {
    // The webhooks show the prediction as it is at this event, whenever they are delivered.
    const moment = events.length > 0 && prediction.spec.webhook !== undefined ? { ...toRecord(prediction), history: [...prediction.history] } : undefined;
    const hooks = moment === undefined ? [] : events.map((event) => ({ event, moment }));
    if (waiting !== null) {
      const history = [...(waiting.change.history ?? []), ...(change.history ?? [])];
      waiting.change = { ...waiting.change, ...change, ...(history.length > 0 ? { history } : {}) };
      waiting.webhooks.push(...hooks);
      return;
    }
    const batch: Batch = { change, webhooks: hooks };
    waiting = batch;
    chain = chain.then(() => {
      waiting = null;
      return send(batch);
    });
  };
  const state = () => splitRecord(toRecord(prediction)).state;
  prediction.subscribe((event: PredictionEvent) => {
    if (event.type === 'log' || event.type === 'progress') write({ history: [event] }, 'logs');
    else if (event.type === 'start') write({ status: 'processing', state: state() }, 'start');
    else if (event.type === 'completed')
      write({ status: prediction.status, state: state() }, ...(prediction.outputs === null ? [] : ['output' as const]), 'completed');
  });
  return () => chain;
}

/** Delivers the outputs where the prediction asked, keeping in Redis those the API nodes serve or inline. */
async function deliver(prediction: Prediction, files: string[], store: ClusterStore): Promise<OutputFile[]> {
  const { id, key, output } = prediction.spec;
  const delivered = await deliverOutputs(files, output, { id, key, signal: prediction.abort.signal });
  if (output.kind === 'data-uri' || output.kind === 'served') {
    const ttl = await store.retention(id);
    for (const file of files) {
      const bytes = await readFile(file);
      if (bytes.length > MAX_REDIS_OUTPUT_BYTES) {
        throw new Error(
          `output ${basename(file)} is ${(bytes.length / 2 ** 20).toFixed(1)} MiB, more than Redis keeps (${MAX_REDIS_OUTPUT_BYTES / 2 ** 20} MiB): give the API nodes --upload-url`,
        );
      }
      await store.putOutput(key, basename(file), bytes, ttl);
    }
  }
  return delivered;
}
