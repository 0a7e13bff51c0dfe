/**
 * A prediction as plain JSON, for the stores that outlive a process (the SQLite journal, Redis):
 * its spec (the webhook's event set as a list, the output folder left out: it is where the
 * reader keeps outputs) and its state (times as epoch milliseconds, output files by name).
 */
import { basename, join } from 'node:path';
import type { OutputTarget } from './outputs.js';
import { Prediction, type Metrics, type PredictionSpec, type Status, type WebhookEventName } from './prediction.js';

export interface PredictionRecord {
  id: string;
  key: string;
  api: PredictionSpec['api'];
  input: unknown;
  model?: string;
  version?: string;
  webhook?: { url: string; events: WebhookEventName[]; headers: Record<string, string> };
  output: OutputTarget;
  baseUrl: string;
  status: Status;
  createdAt: number;
  startedAt: number | null;
  completedAt: number | null;
  history: Prediction['history'];
  /** Output files by name (in the prediction's folder), with the URL each was delivered to. */
  outputs: { name: string; url?: string }[] | null;
  error: string | null;
  metrics: Metrics | null;
}

const epoch = (date: Date | undefined): number | null => (date === undefined ? null : date.getTime());
const date = (ms: number | null): Date | undefined => (ms === null ? undefined : new Date(ms));

export function toRecord(prediction: Prediction): PredictionRecord {
  const { spec } = prediction;
  return {
    id: spec.id,
    key: spec.key,
    api: spec.api,
    input: spec.input,
    ...(spec.model === undefined ? {} : { model: spec.model }),
    ...(spec.version === undefined ? {} : { version: spec.version }),
    ...(spec.webhook === undefined ? {} : { webhook: { ...spec.webhook, events: [...spec.webhook.events] } }),
    output: spec.output,
    baseUrl: spec.baseUrl,
    status: prediction.status,
    createdAt: prediction.createdAt.getTime(),
    startedAt: epoch(prediction.startedAt),
    completedAt: epoch(prediction.completedAt),
    history: prediction.history,
    outputs: prediction.outputs?.map((file) => ({ name: basename(file.path), ...(file.url === undefined ? {} : { url: file.url }) })) ?? null,
    error: prediction.error,
    metrics: prediction.metrics,
  };
}

/** The prediction a record describes, its outputs in `dir`. */
export function fromRecord(record: PredictionRecord, dir: string): Prediction {
  const prediction = new Prediction({
    id: record.id,
    key: record.key,
    api: record.api,
    input: record.input,
    model: record.model,
    version: record.version,
    webhook: record.webhook === undefined ? undefined : { ...record.webhook, events: new Set(record.webhook.events) },
    output: record.output,
    baseUrl: record.baseUrl,
    dir,
  });
  prediction.restore({
    status: record.status,
    createdAt: new Date(record.createdAt),
    startedAt: date(record.startedAt),
    completedAt: date(record.completedAt),
    history: record.history,
    outputs: record.outputs?.map((file) => ({ path: join(dir, file.name), ...(file.url === undefined ? {} : { url: file.url }) })) ?? null,
    error: record.error,
    metrics: record.metrics,
  });
  return prediction;
}
