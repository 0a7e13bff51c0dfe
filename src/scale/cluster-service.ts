/**
 * An API node of a scaled deployment (`flux-lora serve --redis …`): the HTTP API's predictions
 * with no predictor here. A create is validated against what the live workers announce,
 * saved in Redis and queued for the requested model; reads, waits and event streams follow the
 * prediction in Redis (./mirrors.ts); cancel reaches the worker running it through a Redis
 * channel. Every API node also watches the workers' heartbeats: a prediction whose worker
 * stopped announcing itself is queued again once (attempt 2), or failed with the reason if it
 * already was. While Redis is unreachable every request that needs it is answered 503 naming it.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ImageSourceOptions } from '../images/source.js';
import { validateServable } from '../predictor/predictor.js';
import type { PredictionBackend } from '../server/backend.js';
import { HttpError } from '../server/errors.js';
import { checkInput } from '../server/input-check.js';
import { fromRecord, toRecord, type PredictionRecord } from '../server/prediction-record.js';
import { Prediction } from '../server/prediction.js';
import { newId, newKey, ServiceError, type Admission, type CreateRequest, type Health, type SetupState } from '../server/service.js';
import type { WebhookOptions } from '../server/webhooks.js';
import { within } from '../server/within.js';
import { CHANNELS, ClusterStore, splitRecord, type ClusterState, type WorkerInfo } from './cluster-store.js';
import { deliverWebhooks, WebhookQueue } from './cluster-webhooks.js';
import { HEARTBEAT } from './heartbeat.js';
import { Mirrors } from './mirrors.js';
import { PredictQueues } from './queues.js';
import { connect, describeRedis } from './redis.js';

export interface ClusterServiceOptions {
  redisUrl: string;
  /** --model-name: the model of requests that name none (else the one model the workers serve). */
  modelName?: string;
  /** Jobs that may wait for the workers of one model. */
  queueSize: number;
  /** How long finished predictions and their outputs stay in Redis. */
  retentionMs: number;
  imageSource: ImageSourceOptions & { maxPixels: number };
  webhooks: WebhookOptions;
  log: FastifyBaseLogger;
}

/** A prediction retried this many times is failed when its worker stops again. */
const MAX_ATTEMPTS = 2;

/** A record after `apply` changed the prediction it describes, with its state part for ClusterStore.change. */
function transition(record: PredictionRecord, apply: (prediction: Prediction) => void): { record: PredictionRecord; state: ClusterState } {
  const prediction = fromRecord(record, '');
  apply(prediction);
  const after = toRecord(prediction);
  return { record: after, state: splitRecord(after).state };
}

export class ClusterService implements PredictionBackend {
  readonly setup: SetupState = { status: 'starting', startedAt: new Date(), logs: [] };
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly bull: Redis;
  private readonly store: ClusterStore;
  private readonly mirrors: Mirrors;
  private readonly queues: PredictQueues;
  private readonly webhooks: WebhookQueue;
  private readonly delivery: Worker;
  private readonly monitor: NodeJS.Timeout;
  private readonly ready: Promise<void>;
  private workers: WorkerInfo[] = [];
  /** Since when Redis has answered without a break (heartbeats are only judged after a whole TTL of it). */
  private upSince: number | undefined;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: ClusterServiceOptions) {
    this.redis = connect(options.redisUrl, 'api');
    this.subscriber = connect(options.redisUrl, 'subscriber');
    this.bull = connect(options.redisUrl, 'worker');
    this.store = new ClusterStore(this.redis);
    this.mirrors = new Mirrors(this.store, this.subscriber);
    this.queues = new PredictQueues(this.redis);
    this.webhooks = new WebhookQueue(this.redis, options.webhooks);
    this.delivery = deliverWebhooks(this.bull, this.store, options.webhooks, options.log);
    this.ready = new Promise<void>((resolve) => {
      const connected = () => {
        this.setup.status = 'succeeded';
        this.setup.completedAt = new Date();
        this.setup.logs.push(`connected to ${describeRedis(options.redisUrl)}`);
        resolve();
      };
      if (this.redis.status === 'ready') connected();
      else this.redis.once('ready', connected);
    });
    this.monitor = setInterval(() => void this.watch().catch(() => undefined), HEARTBEAT.intervalMs).unref();
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  health(): Health {
    if (this.setup.status === 'starting') return 'STARTING';
    if (this.redis.status !== 'ready') return 'UNHEALTHY';
    return this.mirrors.followed().some((p) => p.status === 'processing') ? 'BUSY' : 'READY';
  }

  healthDetails(): Record<string, unknown> {
    return {
      redis: { url: describeRedis(this.options.redisUrl), state: this.redis.status === 'ready' ? 'connected' : 'unreachable' },
      workers: this.workers.map((w) => ({ id: w.id, model: w.model, running: w.running, draining: w.draining })),
    };
  }

  /** Throws the ServiceError that keeps a request out while Redis is away or the node stops. */
  private available(): void {
    if (this.stopping !== undefined) throw new ServiceError('stopping', 'the server is shutting down');
    if (this.setup.status === 'starting') throw new ServiceError('not-ready', `not connected to ${describeRedis(this.options.redisUrl)} yet`);
    if (this.redis.status !== 'ready') this.unreachable();
  }

  private unreachable(): never {
    throw new ServiceError(
      'unavailable',
      `Redis at ${describeRedis(this.options.redisUrl)} is unreachable, so predictions cannot be created or read; retry when it is back`,
    );
  }

  /** Runs `work`, turning a Redis failure into the 503 that names it. */
  private async guarded<T>(work: () => Promise<T>): Promise<T> {
    this.available();
    try {
      return await work();
    } catch (error) {
      if (this.redis.status !== 'ready' || /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET/.test((error as Error).message)) {
        this.unreachable();
      }
      throw error;
    }
  }

  /** The model a request goes to: the one it names, --model-name, or the one model the workers serve. */
  private route(requested: string | undefined, workers: WorkerInfo[]): string {
    const model = requested ?? this.options.modelName;
    if (model !== undefined) return model;
    const served = [...new Set(workers.map((w) => w.model))];
    if (served.length === 1) return served[0] as string;
    if (served.length === 0) throw new ServiceError('unavailable', 'no worker is running: start one with flux-lora worker --redis … --model-name owner/name');
    throw new HttpError(404, `several models are served here (${served.join(', ')}): address one, e.g. POST /v1/models/${served[0]}/predictions`);
  }

  async create(request: CreateRequest, _admission: Admission): Promise<Prediction> {
    return this.guarded(async () => {
      const workers = await this.store.workers();
      const model = this.route(request.model, workers);
      const serving = workers.filter((w) => w.model === model && !w.draining);
      if (serving.length === 0) {
        const draining = workers.filter((w) => w.model === model).length;
        const others = [...new Set(workers.filter((w) => w.model !== model).map((w) => w.model))];
        const notes = [...(draining > 0 ? [`${draining} draining`] : []), ...(others.length > 0 ? [`workers serve ${others.join(', ')}`] : [])];
        throw new ServiceError('unavailable', `no worker serves ${model} now${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`);
      }
      const servable = { variants: [...new Set(serving.flatMap((w) => w.variants))], safetyDisabled: serving.every((w) => w.safetyDisabled) };
      await checkInput(request.input, (raw) => validateServable(raw, servable), this.options.imageSource);
      if ((await this.queues.waiting(model)) >= this.options.queueSize * serving.length) {
        throw new ServiceError('queue-full', `the queue of ${model} is full (${this.options.queueSize} predictions per worker waiting); retry later`);
      }
      const id = request.id ?? newId();
      const prediction = new Prediction({ ...request, id, key: newKey(), dir: '' });
      // Queued before it is saved: were this node to stop in between, no prediction is left without its job
      // (a worker that finds no prediction yet tries the job again a little later).
      await this.queues.add(model, { id, attempt: 1 });
      if (!(await this.store.create(toRecord(prediction), model, this.options.retentionMs))) {
        throw new ServiceError('duplicate', `a prediction with id "${id}" already exists`);
      }
      this.options.log.info({ predictionId: id, api: request.api, model }, 'prediction queued');
      // Made from Redis like every other read, so its outputs are read from there.
      return (await this.mirrors.get(id)) as Prediction;
    });
  }

  find(id: string): Promise<Prediction | undefined> {
    return this.guarded(() => this.mirrors.get(id));
  }

  findByKey(key: string): Promise<Prediction | undefined> {
    return this.guarded(async () => {
      const id = await this.store.idOfKey(key);
      return id === undefined ? undefined : this.mirrors.get(id);
    });
  }

  list(offset: number, count: number): Promise<{ predictions: Prediction[]; total: number }> {
    return this.guarded(async () => {
      const { ids, total } = await this.store.ids(offset, count);
      const predictions = await Promise.all(ids.map((id) => this.mirrors.get(id)));
      return { predictions: predictions.filter((p): p is Prediction => p !== undefined), total };
    });
  }

  /** A waiting prediction is canceled here; a running one by its worker, told through the cancel channel. */
  async cancel(prediction: Prediction): Promise<void> {
    await this.guarded(async () => {
      if (prediction.terminal) return;
      this.options.log.info({ predictionId: prediction.id }, 'prediction canceled');
      if (prediction.status === 'starting') {
        const canceled = transition(toRecord(prediction), (p) => p.cancel());
        if ((await this.store.change(prediction.id, prediction.spec.key, { status: ['starting'] }, { status: 'canceled', state: canceled.state })) > 0) {
          await this.webhooks.due(canceled.record, 'completed');
          return;
        }
      }
      await this.redis.publish(CHANNELS.cancel, prediction.id);
    });
  }

  /** Refreshes the list of workers and takes back the predictions of those whose heartbeat stopped. */
  private async watch(): Promise<void> {
    if (this.redis.status !== 'ready') {
      this.upSince = undefined;
      return;
    }
    this.upSince ??= Date.now();
    this.workers = await this.store.workers();
    // After a Redis outage, workers need a whole TTL to announce themselves again.
    if (Date.now() - this.upSince < HEARTBEAT.ttlMs) return;
    const alive = new Set(this.workers.map((w) => w.id));
    for (const job of await this.store.running()) {
      if (!alive.has(job.worker)) await this.recover(job);
    }
  }

  private async recover(job: { id: string; key: string; worker: string; attempt: number }): Promise<void> {
    const snapshot = await this.store.snapshot(job.id);
    if (snapshot === undefined) return;
    const guard = { status: ['starting' as const, 'processing' as const], attempt: job.attempt, worker: job.worker };
    const lastStep = snapshot.record.history.findLast((event) => event.type === 'progress');
    const where = lastStep?.type === 'progress' ? ` during step ${lastStep.progress.step}/${lastStep.progress.total}` : '';
    const stopped = `worker ${job.worker} stopped (no heartbeat for ${HEARTBEAT.ttlMs / 1000} s)${where}`;
    const log = this.options.log.child({ predictionId: job.id });
    if (job.attempt < MAX_ATTEMPTS) {
      const line = `${stopped}; retrying on another worker`;
      const change = {
        status: 'starting' as const,
        state: transition(snapshot.record, (p) => {
          p.status = 'starting';
        }).state,
        attempt: job.attempt + 1,
        worker: '',
        history: [{ type: 'log' as const, line }],
      };
      // The job first, as on create (its worker waits until the prediction is handed to that attempt).
      await this.queues.add(snapshot.model, { id: job.id, attempt: job.attempt + 1 });
      if ((await this.store.change(job.id, job.key, guard, change)) > 0) log.warn(line);
      return;
    }
    const error = `${stopped}, and it had been retried once already`;
    const failed = transition(snapshot.record, (p) => p.fail(error));
    if ((await this.store.change(job.id, job.key, guard, { status: 'failed', state: failed.state })) > 0) {
      await this.webhooks.due(failed.record, 'completed');
      log.warn(error);
    }
  }

  shutdown(deadlineMs: number): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.monitor);
      // Requests that wait for a prediction (synchronous, Prefer: wait) get their answer if it comes in time.
      await within(Promise.all(this.mirrors.followed().map((p) => p.finished)), deadlineMs);
      this.mirrors.close();
      await within(this.delivery.close(), deadlineMs);
      await Promise.all([this.queues.close(), this.webhooks.close()]);
      for (const connection of [this.redis, this.subscriber, this.bull]) connection.disconnect();
    })();
    return this.stopping;
  }
}
