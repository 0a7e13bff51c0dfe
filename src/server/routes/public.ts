/**
 * The capability URLs, reachable without a token because the Replicate client fetches them
 * bare: output files at /outputs/<key>/<name>, and the server-sent event stream at
 * /v1/streams/<key> that `urls.stream` names (src/server/event-stream.ts).
 */
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { HttpError } from '../errors.js';
import { mimeType } from '../outputs.js';
import { streamPrediction } from '../event-stream.js';

const keyParams = {
  type: 'object',
  required: ['key'],
  properties: { key: { type: 'string', pattern: '^[0-9a-f]{32}$' }, name: { type: 'string', maxLength: 255 } },
};

export function publicRoutes(app: FastifyInstance, context: ServerContext): void {
  const { service } = context;
  const config = { public: true };

  app.get<{ Params: { key: string } }>('/v1/streams/:key', { config, schema: { params: keyParams } }, async (request, reply) => {
    const prediction = await service.findByKey(request.params.key);
    if (prediction === undefined) throw new HttpError(404, 'no such stream');
    streamPrediction(prediction, reply);
  });

  app.get<{ Params: { key: string; name: string } }>('/outputs/:key/:name', { config, schema: { params: keyParams } }, async (request, reply) => {
    const prediction = await service.findByKey(request.params.key);
    const file = prediction?.outputs?.find((f) => basename(f.path) === request.params.name);
    if (prediction === undefined || file === undefined) throw new HttpError(404, 'no such output file');
    return reply
      .type(mimeType(file.path))
      .header('Cache-Control', 'public, max-age=3600, immutable')
      .send(await prediction.readOutput(file));
  });
}
