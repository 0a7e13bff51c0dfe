/**
 * Webhooks of a scaled deployment, sent exactly once whichever process saw the event: the
 * process that made a change adds a delivery job whose id names the prediction and the event
 * (`<id>.start`, `<id>.output`, `<id>.completed`; log webhooks at most one per throttle
 * interval), so a second add of the same event is a no-op (a retried job does not send `start`
 * twice). The API nodes deliver them: each renders the prediction as it is then (the view of
 * the API that created it) and POSTs it; `completed` is retried by BullMQ with backoff on
 * 429/5xx and network errors, as the single server retries it.
 */
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import type { FastifyBaseLogger } from 'fastify';
import { redact } from '../net/safe-fetch.js';
import type { PredictionRecord } from '../server/prediction-record.js';
import { webhookView } from '../server/views.js';
import { postWebhook, webhookHeaders, type WebhookOptions } from '../server/webhooks.js';
import { splitRecord, type ClusterStore } from './cluster-store.js';
import { BULL_PREFIX, WEBHOOK_QUEUE, type WebhookJob } from './queues.js';
import { materialize } from './mirrors.js';

/** Jobs kept after they ran, so that the same event added again within a day is still recognised. */
const KEEP = { age: 24 * 3600 };

export class WebhookQueue {
  private readonly queue: Queue<WebhookJob>;
  /** When each prediction's last log webhook was added. */
  private readonly lastLogs = new Map<string, number>();

  constructor(
    connection: ConnectionOptions,
    private readonly options: Pick<WebhookOptions, 'retries' | 'backoffMs' | 'throttleMs'>,
  ) {
    this.queue = new Queue<WebhookJob>(WEBHOOK_QUEUE, { connection, prefix: BULL_PREFIX });
    this.queue.on('error', () => undefined);
  }

  /**
   * Adds the delivery of `event` if the prediction's webhook asks for it, showing the
   * prediction as `record` is now (call it when the event happens).
   */
  async due(record: PredictionRecord, event: WebhookJob['event']): Promise<void> {
    const spec = record;
    if (spec.webhook === undefined || !spec.webhook.events.includes(event)) return;
    const moment = { state: splitRecord(record).state, historyLength: record.history.length };
    let jobId = `${spec.id}.${event}`;
    if (event === 'logs') {
      const now = Date.now();
      if (now - (this.lastLogs.get(spec.id) ?? -Infinity) < this.options.throttleMs) return;
      this.lastLogs.set(spec.id, now);
      jobId = `${spec.id}.logs.${now}`;
    }
    if (event === 'completed') this.lastLogs.delete(spec.id);
    const retries = event === 'completed' ? this.options.retries : 0;
    await this.queue.add(
      'webhook',
      { id: spec.id, event, ...moment },
      {
        jobId,
        attempts: retries + 1,
        backoff: { type: 'exponential', delay: this.options.backoffMs },
        removeOnComplete: KEEP,
        removeOnFail: KEEP,
      },
    );
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

/** Delivers the webhook jobs (on API nodes). */
export function deliverWebhooks(connection: ConnectionOptions, store: ClusterStore, options: WebhookOptions, log: FastifyBaseLogger): Worker<WebhookJob> {
  const worker = new Worker<WebhookJob>(
    WEBHOOK_QUEUE,
    async (job) => {
      const snapshot = await store.snapshot(job.data.id);
      const spec = snapshot?.record.webhook;
      if (snapshot === undefined || spec === undefined) return;
      const { state, historyLength } = job.data;
      const prediction = materialize(
        { ...snapshot, record: { ...snapshot.record, ...state, history: snapshot.record.history.slice(0, historyLength) } },
        store,
      );
      const webhook = prediction.spec.webhook as NonNullable<typeof prediction.spec.webhook>;
      const body = JSON.stringify(await webhookView(prediction));
      const failure = await postWebhook(spec.url, body, webhookHeaders(webhook, options), AbortSignal.timeout(options.timeoutMs));
      if (failure === undefined) return;
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (failure.retry && !last) throw new Error(failure.problem);
      log.warn({ predictionId: job.data.id, webhook: redact(spec.url), attempts: job.attemptsMade + 1 }, `webhook delivery failed: ${failure.problem}`);
    },
    { connection, prefix: BULL_PREFIX, concurrency: 16 },
  );
  worker.on('error', () => undefined);
  return worker;
}
