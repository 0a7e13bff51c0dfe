/** What the route modules share: the prediction service, the server's settings, and helpers for requests. */
import type { FastifyRequest } from 'fastify';
import { WEBHOOK_EVENTS, type WebhookSpec } from './prediction.js';
import type { CogRequest } from './request-schema.js';
import type { PredictionBackend } from './backend.js';

export interface ServerContext {
  service: PredictionBackend;
  version: string;
  /** --upload-url: output files are PUT under it. */
  uploadUrl?: string;
  /** --public-url: the server's URL as clients reach it (links and served outputs use it). */
  publicUrl?: string;
  /** --model-name: the only owner/name the Replicate API answers to. */
  modelName?: string;
  /** Starts the graceful shutdown (POST /shutdown). */
  shutdown(): void;
}

/** The server's base URL for links in answers: --public-url, else as this request reached it. */
export function baseUrl(context: ServerContext, request: FastifyRequest): string {
  return context.publicUrl ?? `${request.protocol}://${request.host}`;
}

const TRACE_HEADERS = ['traceparent', 'tracestate'];

/** The request's webhook, if any, with its event filter and the trace headers to forward. */
export function webhookSpec(body: Pick<CogRequest, 'webhook' | 'webhook_events_filter'>, request: FastifyRequest): WebhookSpec | undefined {
  if (body.webhook === undefined || body.webhook === null) return undefined;
  const headers: Record<string, string> = {};
  for (const name of TRACE_HEADERS) {
    const value = request.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  return { url: body.webhook, events: new Set(body.webhook_events_filter ?? WEBHOOK_EVENTS), headers };
}
