/**
 * The part of Replicate's HTTP API (v1) the official `replicate` client uses for predictions.
 * One model serves every `owner/name` and version unless --model-name restricts it. Creates
 * queue (201); `Prefer: wait[=n]` holds the answer up to n (≤ 60) seconds, and a prediction
 * still unfinished then is reported `starting`, because the client only polls for that status
 * (for `processing` it would return no output).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { baseUrl, webhookSpec, type ServerContext } from '../context.js';
import { HttpError, sendError } from '../errors.js';
import type { OutputTarget } from '../outputs.js';
import { idParams, REPLICATE_REQUEST_SCHEMA, type ReplicateRequest } from '../request-schema.js';
import { replicateView } from '../views.js';
import { within } from '../within.js';

const MAX_WAIT_SECONDS = 60;
/** How long a cancel answer waits for the prediction to stop, so that it can report `canceled`. */
const CANCEL_WAIT_MS = 5_000;
/** Predictions per page of the list (their outputs may be data URIs, so pages stay small). */
const PAGE_SIZE = 20;

type ModelParams = { owner: string; name: string };
type IdParams = { id: string };

/** Seconds to hold a create for `Prefer: wait` / `wait=n`; undefined without it. */
function preferWait(header: string | string[] | undefined): number | undefined {
  for (const part of [header ?? ''].flat().join(',').split(',')) {
    const m = /^\s*wait(?:\s*=\s*(\d+))?\s*$/i.exec(part);
    if (m !== null) return Math.min(Math.max(Number(m[1] ?? MAX_WAIT_SECONDS), 1), MAX_WAIT_SECONDS);
  }
  return undefined;
}

function outputTarget(context: ServerContext): OutputTarget {
  if (context.uploadUrl !== undefined) return { kind: 'upload', url: context.uploadUrl };
  // The client turns only https: and data: strings into files, so plain links need --public-url.
  if (context.publicUrl !== undefined) return { kind: 'served', base: context.publicUrl };
  return { kind: 'data-uri' };
}

/** The model a request addresses, checked against --model-name. */
function addressedModel(context: ServerContext, model: string | undefined): string | undefined {
  if (model !== undefined && context.modelName !== undefined && model !== context.modelName) {
    throw new HttpError(404, `model ${model} is not served here (this server serves ${context.modelName})`);
  }
  return model ?? context.modelName;
}

async function create(context: ServerContext, request: FastifyRequest, reply: FastifyReply, routeModel: string | undefined) {
  const body = request.body as ReplicateRequest;
  // `version` may also name the model: "owner/name" or "owner/name:version".
  const [versionModel, versionId] = body.version?.includes('/') ? [body.version.split(':')[0], body.version.split(':')[1]] : [undefined, body.version];
  const model = addressedModel(context, routeModel ?? versionModel);
  const wait = preferWait(request.headers.prefer);
  const prediction = await context.service.create(
    {
      input: body.input ?? {},
      api: 'replicate',
      model,
      version: versionId,
      webhook: webhookSpec(body, request),
      output: outputTarget(context),
      baseUrl: baseUrl(context, request),
    },
    'queued',
  );
  if (wait !== undefined) await within(prediction.finished, wait * 1000);
  const view = await replicateView(prediction);
  if (wait !== undefined && !prediction.terminal) view.status = 'starting';
  return reply.code(201).send(view);
}

export function replicateRoutes(app: FastifyInstance, context: ServerContext): void {
  const { service } = context;
  const bodySchema = { schema: { body: REPLICATE_REQUEST_SCHEMA } };

  app.post('/v1/predictions', bodySchema, (request, reply) => create(context, request, reply, undefined));
  for (const kind of ['models', 'deployments']) {
    app.post<{ Params: ModelParams }>(`/v1/${kind}/:owner/:name/predictions`, bodySchema, (request, reply) =>
      create(context, request, reply, `${request.params.owner}/${request.params.name}`),
    );
  }

  const lookup = async (request: FastifyRequest<{ Params: IdParams }>) => {
    const prediction = await service.find(request.params.id);
    if (prediction === undefined) throw new HttpError(404, `prediction ${request.params.id} not found`);
    return prediction;
  };
  const idSchema = { schema: { params: idParams('id') } };

  // The list, newest first, PAGE_SIZE a page; `next` carries the offset of the following page as its cursor.
  app.get<{ Querystring: { cursor?: string } }>(
    '/v1/predictions',
    { schema: { querystring: { type: 'object', properties: { cursor: { type: 'string', pattern: '^\\d{1,9}$' } } } } },
    async (request) => {
      const start = Number(request.query.cursor ?? 0);
      const { predictions, total } = await service.list(start, PAGE_SIZE);
      const page = (offset: number) => `${baseUrl(context, request)}/v1/predictions?cursor=${offset}`;
      return {
        previous: start > 0 ? page(Math.max(start - PAGE_SIZE, 0)) : null,
        next: start + PAGE_SIZE < total ? page(start + PAGE_SIZE) : null,
        results: await Promise.all(predictions.map(replicateView)),
      };
    },
  );

  app.get<{ Params: IdParams }>('/v1/predictions/:id', idSchema, async (request) => replicateView(await lookup(request)));

  app.post<{ Params: IdParams }>('/v1/predictions/:id/cancel', idSchema, async (request) => {
    const prediction = await lookup(request);
    await service.cancel(prediction);
    await within(prediction.finished, CANCEL_WAIT_MS);
    return replicateView(prediction);
  });

  // The client uploads Buffer/Blob inputs here first; on a 5xx it sends them inline as data URIs instead.
  // Answered before the (multipart) body is read.
  app.post('/v1/files', {
    onRequest: async (request, reply) =>
      sendError(request, reply, 501, 'file uploads are not stored by this server: send files inline as data URIs or as http(s) URLs'),
    handler: async () => undefined,
  });
}
