/**
 * Webhook delivery as Cog does it: the events a request's webhook_events_filter keeps (start,
 * output, logs, completed), each POSTing the prediction's current state. Non-terminal events
 * arriving while one is in flight or within the throttle interval of the last one sent are
 * dropped (the next webhook carries the full state anyway); `output` and `completed` are never
 * dropped, and `completed` is retried on 429/5xx and network errors with exponential backoff.
 * Deliveries run beside the prediction and never hold it up.
 */
import type { FastifyBaseLogger } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { redact } from '../net/safe-fetch.js';
import type { Prediction, PredictionEvent, WebhookEventName, WebhookSpec } from './prediction.js';

export interface WebhookOptions {
  /** Minimum interval between non-terminal webhooks (Cog: 500 ms). */
  throttleMs: number;
  /** Retries of the terminal webhook (Cog: 12). */
  retries: number;
  /** First retry delay; each later one doubles (Cog: 100 ms, capped at 2^10 times). */
  backoffMs: number;
  /** Time limit of one attempt. */
  timeoutMs: number;
  /** Sent as `Authorization: Bearer <token>` (Cog's WEBHOOK_AUTH_TOKEN). */
  token?: string;
  userAgent: string;
}

export const DEFAULT_WEBHOOK_OPTIONS: Omit<WebhookOptions, 'userAgent'> = { throttleMs: 500, retries: 12, backoffMs: 100, timeoutMs: 10_000 };

const RETRYABLE = new Set([429, 500, 502, 503, 504]);

function eventName(event: PredictionEvent): WebhookEventName {
  switch (event.type) {
    case 'start':
      return 'start';
    case 'log':
    case 'progress':
      return 'logs';
    case 'output':
      return 'output';
    case 'completed':
      return 'completed';
  }
}

/** The headers of a webhook POST: the request's trace context, JSON, our user agent and the operator's token. */
export function webhookHeaders(spec: WebhookSpec, options: Pick<WebhookOptions, 'token' | 'userAgent'>): Record<string, string> {
  const headers: Record<string, string> = { ...spec.headers, 'Content-Type': 'application/json', 'User-Agent': options.userAgent };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  return headers;
}

/** One POST: undefined when delivered, else what went wrong and whether it is worth retrying (429, 5xx, network errors). */
export async function postWebhook(
  url: string,
  body: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<{ problem: string; retry: boolean } | undefined> {
  try {
    const response = await fetch(url, { method: 'POST', body, headers, signal });
    await response.body?.cancel();
    return response.ok ? undefined : { problem: `HTTP ${response.status}`, retry: RETRYABLE.has(response.status) };
  } catch (error) {
    return { problem: (error as Error).message, retry: true };
  }
}

/** Sends the webhooks of every prediction that asked for them; `flush` waits for those under way. */
export class Webhooks {
  private readonly running = new Set<Promise<void>>();
  private readonly stopped = new AbortController();

  constructor(
    private readonly options: WebhookOptions,
    private readonly log: FastifyBaseLogger,
  ) {}

  /**
   * Follows `prediction`'s events; `render` gives the body for its current state. `settled` is
   * called once the `completed` webhook is delivered or given up.
   */
  attach(prediction: Prediction, render: () => Promise<object>, settled: () => void = () => undefined): void {
    const spec = prediction.spec.webhook;
    if (spec === undefined) return;
    const log = this.log.child({ predictionId: prediction.id });
    let chain: Promise<void> = Promise.resolve();
    let inFlight = false;
    let lastSent = -Infinity;
    const enqueue = (send: () => Promise<void>) => {
      const next = chain.then(send);
      chain = next;
      this.track(next);
    };
    prediction.subscribe((event) => {
      const name = eventName(event);
      if (!spec.events.has(name)) return;
      if (name === 'output' || name === 'completed') {
        // The state of this moment (the output arrives while still processing); only `completed` is retried.
        const body = render();
        body.catch(() => undefined); // handled when delivered
        if (name === 'output') enqueue(() => this.deliver(spec, () => body, log, 0));
        else enqueue(() => this.deliver(spec, () => body, log, this.options.retries).finally(() => this.settle(settled)));
      } else if (!inFlight && Date.now() - lastSent >= this.options.throttleMs) {
        inFlight = true;
        lastSent = Date.now();
        enqueue(async () => {
          await this.deliver(spec, render, log, 0);
          inFlight = false;
        });
      }
    });
  }

  /** Sends the `completed` webhook of a finished prediction again (it was due when the last server stopped). */
  redeliver(prediction: Prediction, render: () => Promise<object>, settled: () => void): void {
    const spec = prediction.spec.webhook;
    if (spec === undefined || !spec.events.has('completed')) return settled();
    this.track(this.deliver(spec, render, this.log.child({ predictionId: prediction.id }), this.options.retries).finally(() => this.settle(settled)));
  }

  /** A delivery abandoned at shutdown stays due (a server with a data folder sends it after its restart). */
  private settle(settled: () => void): void {
    if (!this.stopped.signal.aborted) settled();
  }

  private track(delivery: Promise<void>): void {
    this.running.add(delivery);
    void delivery.finally(() => this.running.delete(delivery));
  }

  private async post(url: string, body: string, headers: Record<string, string>): Promise<{ problem: string; retry: boolean } | undefined> {
    const failure = await postWebhook(url, body, headers, AbortSignal.any([this.stopped.signal, AbortSignal.timeout(this.options.timeoutMs)]));
    return failure === undefined ? undefined : { ...failure, retry: failure.retry && !this.stopped.signal.aborted };
  }

  private async deliver(spec: WebhookSpec, render: () => Promise<object>, log: FastifyBaseLogger, retries: number): Promise<void> {
    const headers = webhookHeaders(spec, this.options);
    try {
      const body = JSON.stringify(await render());
      for (let attempt = 0; ; attempt++) {
        const failure = await this.post(spec.url, body, headers);
        if (failure === undefined) return;
        if (!failure.retry || attempt >= retries) {
          log.warn({ webhook: redact(spec.url), attempts: attempt + 1 }, `webhook delivery failed: ${failure.problem}`);
          return;
        }
        await sleep(this.options.backoffMs * 2 ** Math.min(attempt, 10), undefined, { signal: this.stopped.signal });
      }
    } catch (error) {
      if (!this.stopped.signal.aborted) log.warn({ webhook: redact(spec.url) }, `webhook delivery failed: ${(error as Error).message}`);
    }
  }

  /** Waits up to `ms` for the deliveries under way, then abandons the rest. */
  async flush(ms: number): Promise<void> {
    const timer = sleep(ms, undefined, { signal: this.stopped.signal }).catch(() => undefined);
    await Promise.race([Promise.all(this.running), timer]);
    this.stopped.abort();
  }
}
