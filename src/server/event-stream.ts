/**
 * A prediction as a server-sent event stream (the Replicate API's `urls.stream`, and Cog's
 * `Accept: text/event-stream`): the log so far, then `logs` (one line each, progress lines
 * included), `progress` (a JSON step event per denoising step), `output` (each file's URL or
 * data URI), `error` (the failure message) and `done` (`{}`, or `{"reason":"canceled"}`),
 * after which it closes.
 */
import type { FastifyReply } from 'fastify';
import type { Prediction, PredictionEvent } from './prediction.js';
import { replicateView } from './views.js';

const KEEP_ALIVE_MS = 15_000;

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

export function streamPrediction(prediction: Prediction, reply: FastifyReply): void {
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
