/**
 * The capability URLs, reachable without a token because the Replicate client fetches them
 * bare: output files at /outputs/<key>/<name>, and the server-sent event stream at
 * /v1/streams/<key> that `urls.stream` names. The stream replays the log so far, then follows:
 * `logs` (one line each, progress lines included), `progress` (a JSON step event per
 * denoising step), `output` (each file's URL or data URI), `error` (the failure message),
 * and `done` (`{}`, or `{"reason":"canceled"}`), after which it closes.
 */
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerContext } from '../context.js';
import { HttpError } from '../errors.js';
import { mimeType } from '../outputs.js';
import type { Prediction, PredictionEvent } from '../prediction.js';
import { replicateView } from '../views.js';

const KEEP_ALIVE_MS = 15_000;
const keyParams = {
  type: 'object',
  required: ['key'],
  properties: { key: { type: 'string', pattern: '^[0-9a-f]{32}$' }, name: { type: 'string', maxLength: 255 } },
};

function sseEvent(event: string, data: string): string {
  return `event: ${event}\n${data
    .split('\n')
    .map((line) => `data: ${line}\n`)
    .join('')}\n`;
}

async function terminalEvents(prediction: Prediction): Promise<string> {
  const view = await replicateView(prediction);
  const outputs = (view.output as string[] | null) ?? [];
  const events = outputs.map((output) => sseEvent('output', output));
  if (prediction.status === 'failed') events.push(sseEvent('error', prediction.error ?? 'the prediction failed'));
  events.push(sseEvent('done', JSON.stringify(prediction.status === 'canceled' ? { reason: 'canceled' } : {})));
  return events.join('');
}

function liveEvent(event: PredictionEvent): string {
  if (event.type === 'log') return sseEvent('logs', event.line);
  if (event.type === 'progress') return sseEvent('progress', JSON.stringify(event.progress));
  return '';
}

function stream(prediction: Prediction, reply: FastifyReply): void {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
  raw.write(prediction.history.map(liveEvent).join(''));
  const finish = async () => {
    const events = await terminalEvents(prediction);
    if (!raw.destroyed) raw.end(events);
  };
  if (prediction.terminal) {
    void finish();
    return;
  }
  const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
  const unsubscribe = prediction.subscribe((event) => {
    raw.write(liveEvent(event));
    if (event.type === 'completed') void finish();
  });
  const stop = () => {
    clearInterval(keepAlive);
    unsubscribe();
  };
  raw.on('close', stop);
  void prediction.finished.then(stop);
}

export function publicRoutes(app: FastifyInstance, context: ServerContext): void {
  const { store } = context.service;
  const config = { public: true };

  app.get<{ Params: { key: string } }>('/v1/streams/:key', { config, schema: { params: keyParams } }, async (request, reply) => {
    const prediction = store.getByKey(request.params.key);
    if (prediction === undefined) throw new HttpError(404, 'no such stream');
    stream(prediction, reply);
  });

  app.get<{ Params: { key: string; name: string } }>('/outputs/:key/:name', { config, schema: { params: keyParams } }, async (request, reply) => {
    const file = store.getByKey(request.params.key)?.outputs?.find((f) => basename(f.path) === request.params.name);
    if (file === undefined) throw new HttpError(404, 'no such output file');
    return reply.type(mimeType(file.path)).header('Cache-Control', 'public, max-age=3600, immutable').send(createReadStream(file.path));
  });
}
