/**
 * The BullMQ queues of a scaled deployment: one of predictions per model (owner/name), so a
 * job only reaches a worker that serves its model, and one of webhook deliveries that the API
 * nodes work through. Job ids are deterministic, so adding the same job twice adds it once.
 */
import { Queue, type ConnectionOptions } from 'bullmq';
import type { ClusterState } from './cluster-store.js';

/** BullMQ's keys live under this prefix, beside the predictions' `flux:` keys. */
export const BULL_PREFIX = 'flux:bull';

export interface PredictJob {
  id: string;
  /** 1, or 2 for the retry after a worker stopped. */
  attempt: number;
}

export interface WebhookJob {
  id: string;
  event: 'start' | 'output' | 'logs' | 'completed';
  /** The prediction's state when the event happened, and how long its history was: the webhook shows that moment. */
  state: ClusterState;
  historyLength: number;
}

export const WEBHOOK_QUEUE = 'webhooks';

/** BullMQ queue names may not hold ':'; a model name (owner/name) never does, but is encoded all the same. */
export function predictQueueName(model: string): string {
  return `predict-${encodeURIComponent(model)}`;
}

export function predictJobId(job: PredictJob): string {
  return `${job.id}-${job.attempt}`;
}

/** Adds prediction jobs to the queue of their model (one Queue per model, made on first use). */
export class PredictQueues {
  private readonly queues = new Map<string, Queue<PredictJob>>();

  constructor(private readonly connection: ConnectionOptions) {}

  async add(model: string, job: PredictJob): Promise<void> {
    let queue = this.queues.get(model);
    if (queue === undefined) {
      queue = new Queue<PredictJob>(predictQueueName(model), { connection: this.connection, prefix: BULL_PREFIX });
      queue.on('error', () => undefined); // connection errors surface as failed adds
      this.queues.set(model, queue);
    }
    // A job that failed before a worker claimed its prediction (not saved yet, Redis away) is tried again: 10 times over about 13 s.
    await queue.add('predict', job, {
      jobId: predictJobId(job),
      removeOnComplete: true,
      removeOnFail: true,
      attempts: 10,
      backoff: { type: 'exponential', delay: 25 },
    });
  }

  /** Jobs waiting for a worker of `model`. */
  async waiting(model: string): Promise<number> {
    return (await this.queues.get(model)?.getWaitingCount()) ?? 0;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
  }
}
