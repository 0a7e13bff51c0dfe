/**
 * A prediction as each API shows it: Cog's full (legacy) object, a superset of what coglet
 * sends, and the Replicate API object the official client reads (id, status, output, error,
 * logs, urls). Timestamps are RFC 3339 UTC; files become data URIs unless delivered to a URL.
 */
import { basename } from 'node:path';
import { mimeType } from './outputs.js';
import type { Prediction } from './prediction.js';

function time(date: Date | undefined): string | null {
  return date === undefined ? null : date.toISOString();
}

function logs(prediction: Prediction): string {
  return prediction.logs.map((line) => `${line}\n`).join('');
}

/** The output as strings. Starts from the files as they are at the call, like the views' other fields. */
function output(prediction: Prediction): Promise<string[] | null> {
  if (prediction.outputs === null) return Promise.resolve(null);
  return Promise.all(
    prediction.outputs.map(
      async (file) => file.url ?? `data:${mimeType(basename(file.path))};base64,${(await prediction.readOutput(file)).toString('base64')}`,
    ),
  );
}

/**
 * The views read every field when called and only then wait for the output's data URIs, so
 * a view called at an event shows the state of that moment.
 */
export async function cogView(prediction: Prediction): Promise<Record<string, unknown>> {
  const files = output(prediction);
  const view = {
    input: prediction.spec.input,
    output: null as string[] | null,
    id: prediction.id,
    version: prediction.spec.version ?? null,
    created_at: time(prediction.createdAt),
    started_at: time(prediction.startedAt),
    completed_at: time(prediction.completedAt),
    logs: logs(prediction),
    error: prediction.error,
    status: prediction.status,
    metrics: prediction.metrics,
  };
  view.output = await files;
  return view;
}

/** The URLs of a prediction in the Replicate API, under `base`. */
function replicateUrls(base: string, prediction: Prediction): { get: string; cancel: string; stream: string } {
  const get = `${base}/v1/predictions/${encodeURIComponent(prediction.id)}`;
  return { get, cancel: `${get}/cancel`, stream: `${base}/v1/streams/${prediction.spec.key}` };
}

export async function replicateView(prediction: Prediction): Promise<Record<string, unknown>> {
  const files = output(prediction);
  const view = {
    id: prediction.id,
    model: prediction.spec.model ?? null,
    version: prediction.spec.version ?? null,
    input: prediction.spec.input,
    logs: logs(prediction),
    output: null as string[] | null,
    data_removed: false,
    error: prediction.error,
    source: 'api',
    status: prediction.status,
    created_at: time(prediction.createdAt),
    started_at: time(prediction.startedAt),
    completed_at: time(prediction.completedAt),
    urls: replicateUrls(prediction.spec.baseUrl, prediction),
    ...(prediction.metrics === null ? {} : { metrics: prediction.metrics }),
  };
  view.output = await files;
  return view;
}

/** The webhook body: the view of the API that created the prediction. */
export function webhookView(prediction: Prediction): Promise<Record<string, unknown>> {
  return prediction.spec.api === 'cog' ? cogView(prediction) : replicateView(prediction);
}
