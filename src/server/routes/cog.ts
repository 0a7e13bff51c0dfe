/**
 * Cog's prediction contract at the root: discovery, health, schema, predictions (synchronous,
 * `Prefer: respond-async` → 202, or `Accept: text/event-stream` → an event stream), idempotent PUT, cancel and shutdown. A synchronous
 * prediction whose client disconnects is canceled (as coglet does).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { baseUrl, webhookSpec, type ServerContext } from '../context.js';
import { sendError } from '../errors.js';
import { streamPrediction } from '../event-stream.js';
import { cogOpenApiDocument } from '../openapi.js';
import type { OutputTarget } from '../outputs.js';
import { COG_REQUEST_SCHEMA, idParams, type CogRequest } from '../request-schema.js';
import { cogView } from '../views.js';
import { prefersHtml, sendPlayground } from './web.js';

type IdParams = { prediction_id: string };

function discovery(version: string) {
  return {
    cog_version: version,
    docs_url: '/docs',
    openapi_url: '/openapi.json',
    shutdown_url: '/shutdown',
    healthcheck_url: '/health-check',
    predictions_url: '/predictions',
    predictions_idempotent_url: '/predictions/{prediction_id}',
    predictions_cancel_url: '/predictions/{prediction_id}/cancel',
  };
}

function outputTarget(context: ServerContext, body: CogRequest): OutputTarget {
  if (typeof body.output_file_prefix === 'string') return { kind: 'prefix', prefix: body.output_file_prefix };
  if (context.uploadUrl !== undefined) return { kind: 'upload', url: context.uploadUrl };
  return { kind: 'data-uri' };
}

/** Whether the request asks for an event stream (coglet matches each listed media type, ignoring parameters). */
function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').split(',').some((type) => type.split(';')[0]?.trim().toLowerCase() === 'text/event-stream');
}

async function predict(context: ServerContext, request: FastifyRequest, reply: FastifyReply, id: string | undefined) {
  const body = request.body as CogRequest;
  const respondAsync = request.headers.prefer === 'respond-async';
  const streamed = wantsEventStream(request);
  const prediction = await context.service.create(
    { id, input: body.input ?? {}, api: 'cog', webhook: webhookSpec(body, request), output: outputTarget(context, body), baseUrl: baseUrl(context, request) },
    respondAsync || streamed ? 'queued' : 'sync',
  );
  // As coglet: the stream follows the prediction, which runs on if the client goes (docs/http-api.md §A.6).
  if (streamed) return streamPrediction(prediction, reply);
  if (respondAsync) return reply.code(202).send(await cogView(prediction));
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) void context.service.cancel(prediction);
  });
  await prediction.finished;
  return cogView(prediction);
}

export function cogRoutes(app: FastifyInstance, context: ServerContext): void {
  const { service } = context;
  const publicRoute = { config: { public: true } };

  // Browsers get the playground; JSON clients Cog's discovery document (docs/http-api.md §A.3),
  // whose cog_version is, as coglet does when the SDK's is unknown, the server's own version.
  app.get('/', publicRoute, async (request, reply) => {
    reply.header('Vary', 'Accept');
    if (prefersHtml(request)) return sendPlayground(request, reply, context);
    return discovery(context.version);
  });

  app.get('/health-check', publicRoute, async () => {
    const { setup } = service;
    return {
      status: service.health(),
      ...service.healthDetails(),
      setup: {
        started_at: setup.startedAt.toISOString(),
        completed_at: setup.completedAt?.toISOString() ?? null,
        logs: setup.logs.map((line) => `${line}\n`).join(''),
        status: setup.status,
      },
      version: { flux_lora: context.version },
    };
  });

  app.get('/openapi.json', publicRoute, async () => cogOpenApiDocument(context.version));

  // Cog takes a missing body as an empty request, so its answer is the 422 that names the missing inputs.
  const emptyBodyIsEmptyRequest = {
    preValidation: async (request: FastifyRequest) => {
      request.body ??= {};
    },
  };

  app.post('/predictions', { schema: { body: COG_REQUEST_SCHEMA }, ...emptyBodyIsEmptyRequest }, async (request, reply) => {
    return predict(context, request, reply, (request.body as CogRequest).id ?? undefined);
  });

  app.put<{ Params: IdParams }>(
    '/predictions/:prediction_id',
    { schema: { body: COG_REQUEST_SCHEMA, params: idParams('prediction_id') }, ...emptyBodyIsEmptyRequest },
    async (request, reply) => {
      const id = request.params.prediction_id;
      const bodyId = (request.body as CogRequest).id;
      if (bodyId !== undefined && bodyId !== null && bodyId !== id) {
        return sendError(request, reply, 422, [{ loc: ['body', 'id'], msg: 'prediction ID must match the ID supplied in the URL', type: 'value_error' }]);
      }
      const existing = await service.find(id);
      if (existing !== undefined) return reply.code(existing.terminal ? 200 : 202).send(await cogView(existing));
      return predict(context, request, reply, id);
    },
  );

  app.post<{ Params: IdParams }>('/predictions/:prediction_id/cancel', { schema: { params: idParams('prediction_id') } }, async (request, reply) => {
    const prediction = await service.find(request.params.prediction_id);
    if (prediction === undefined || prediction.terminal) return reply.code(404).send({});
    await service.cancel(prediction);
    return {};
  });

  app.post('/shutdown', async (_request, reply) => {
    reply.raw.once('finish', () => context.shutdown());
    return {};
  });
}
