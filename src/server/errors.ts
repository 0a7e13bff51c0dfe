/**
 * Every error answer, shaped for the API the request addressed: Cog's `{"detail": …}` (422s
 * with a FastAPI-style list naming each input by `loc`), RFC 7807 problem details for the
 * Replicate API under /v1. Messages only: stack traces never leave the server.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InputValidationError, type InputProblem } from '../predictor/inputs.js';
import { ServiceError } from './service.js';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface DetailItem {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** `loras[0].scale` → ['loras', 0, 'scale']; the whole input is Cog's `__root__`. */
function inputPath(name: string): (string | number)[] {
  if (name === '(request)') return ['__root__'];
  return name
    .split(/[.[\]]+/)
    .filter((part) => part !== '')
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function problemItems(problems: readonly InputProblem[]): DetailItem[] {
  return problems.map((p) => ({
    loc: ['body', 'input', ...inputPath(p.input)],
    msg: p.message,
    type: p.message === 'is required' ? 'value_error.missing' : 'value_error',
  }));
}

function schemaItems(error: FastifyError): DetailItem[] {
  const context = error.validationContext ?? 'body';
  return (error.validation ?? []).map((v) => {
    const path = inputPath(v.instancePath.replace(/^\//, '').replace(/\//g, '.'));
    const missing = v.keyword === 'required' ? [String(v.params.missingProperty)] : [];
    const loc = [context, ...(path[0] === '__root__' ? [] : path), ...missing];
    return {
      loc,
      msg: v.keyword === 'required' ? 'Field required' : (v.message ?? 'is invalid'),
      type: v.keyword === 'required' ? 'value_error.missing' : 'value_error',
    };
  });
}

const SERVICE_STATUS: Record<ServiceError['reason'], { cog: number; replicate: number }> = {
  busy: { cog: 409, replicate: 409 },
  // The Replicate client retries a 429 (and nothing else) on create.
  'queue-full': { cog: 409, replicate: 429 },
  duplicate: { cog: 409, replicate: 409 },
  'not-ready': { cog: 503, replicate: 503 },
  stopping: { cog: 503, replicate: 503 },
  unavailable: { cog: 503, replicate: 503 },
};

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  404: 'Not found',
  409: 'Conflict',
  413: 'Request body too large',
  415: 'Unsupported media type',
  422: 'Input validation failed',
  429: 'Too many requests',
  500: 'Internal server error',
  501: 'Not implemented',
  503: 'Service unavailable',
};

function isReplicate(request: FastifyRequest): boolean {
  return request.url.startsWith('/v1/');
}

/** Sends an error answer in the shape of the request's API. */
export function sendError(request: FastifyRequest, reply: FastifyReply, status: number, detail: string | DetailItem[]): FastifyReply {
  reply.code(status);
  if (!isReplicate(request)) return reply.send({ detail });
  const text = typeof detail === 'string' ? detail : detail.map((d) => `${d.loc.slice(1).join('.')}: ${d.msg}`).join('; ');
  const fields =
    typeof detail === 'string'
      ? {}
      : { invalid_fields: detail.map((d) => ({ type: d.type, field: d.loc.slice(d.loc[1] === 'input' ? 2 : 1).join('.'), description: d.msg })) };
  return reply.type('application/problem+json').send({ title: TITLES[status] ?? 'Error', status, detail: text, ...fields });
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof InputValidationError) return sendError(request, reply, 422, problemItems(error.problems));
    if (error.validation !== undefined) return sendError(request, reply, 422, schemaItems(error));
    if (error instanceof ServiceError)
      return sendError(request, reply, SERVICE_STATUS[error.reason][isReplicate(request) ? 'replicate' : 'cog'], error.message);
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) return sendError(request, reply, status, error.message);
    request.log.error({ err: error }, 'request failed');
    return sendError(request, reply, 500, 'internal server error');
  });
  app.setNotFoundHandler((request, reply) => sendError(request, reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`));
}
