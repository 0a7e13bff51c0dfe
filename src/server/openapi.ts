/**
 * GET /openapi.json: Cog's OpenAPI document for this model. `Input` and `Output` are the
 * predictor's own schemas (the one definition it validates with); the request, response,
 * status and validation-error components and the paths follow Cog's generator.
 */
import { openApiComponents } from '../predictor/openapi.js';
import { STATUSES, WEBHOOK_EVENTS } from './prediction.js';
import { COG_REQUEST_SCHEMA, ID_PATTERN } from './request-schema.js';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ 'application/json': { schema } });
const nullableTime = { type: 'string', format: 'date-time', nullable: true };

const PREFER = { in: 'header', name: 'prefer', required: false, schema: { type: 'string', title: 'Prefer' } };
const PREDICTION_ID = { in: 'path', name: 'prediction_id', required: true, schema: { type: 'string', title: 'Prediction ID', pattern: ID_PATTERN } };

function operation(summary: string, operationId: string, responses: Record<string, object>, extra: object = {}) {
  return { summary, operationId, ...extra, responses };
}

const ok = (schema: object = {}) => ({ description: 'Successful Response', content: json(schema) });

function predictOperation(summary: string, operationId: string, parameters: object[]) {
  return operation(
    summary,
    operationId,
    {
      200: ok(ref('PredictionResponse')),
      202: { description: 'Accepted (Prefer: respond-async)', content: json(ref('PredictionResponse')) },
      409: { description: 'Already running a prediction', content: json({ type: 'object', properties: { detail: { type: 'string' } } }) },
      422: { description: 'Validation Error', content: json(ref('HTTPValidationError')) },
    },
    { parameters, requestBody: { content: json(ref('PredictionRequest')) } },
  );
}

export function cogOpenApiDocument(version: string): object {
  const { schemas } = openApiComponents();
  return {
    openapi: '3.0.2',
    info: { title: 'Cog', version },
    paths: {
      '/': { get: operation('Root', 'root__get', { 200: ok() }) },
      '/health-check': { get: operation('Healthcheck', 'healthcheck_health_check_get', { 200: ok() }) },
      // x-cog-streaming: `Accept: text/event-stream` answers an event stream (docs/http-api.md §A.6, §A.15).
      '/predictions': { post: { ...predictOperation('Predict', 'predict_predictions_post', [PREFER]), 'x-cog-streaming': true } },
      '/predictions/{prediction_id}': {
        put: predictOperation('Predict Idempotent', 'predict_idempotent_predictions__prediction_id__put', [PREDICTION_ID, PREFER]),
      },
      '/predictions/{prediction_id}/cancel': {
        post: operation(
          'Cancel',
          'cancel_predictions__prediction_id__cancel_post',
          { 200: ok(), 404: { description: 'Not running' } },
          { parameters: [PREDICTION_ID] },
        ),
      },
      '/shutdown': { post: operation('Start Shutdown', 'start_shutdown_shutdown_post', { 200: ok() }) },
    },
    components: {
      schemas: {
        ...schemas,
        PredictionRequest: { ...COG_REQUEST_SCHEMA, properties: { ...COG_REQUEST_SCHEMA.properties, input: ref('Input') } },
        PredictionResponse: {
          type: 'object',
          title: 'PredictionResponse',
          properties: {
            input: ref('Input'),
            output: ref('Output'),
            id: { type: 'string', title: 'Id' },
            version: { type: 'string', nullable: true, title: 'Version' },
            created_at: nullableTime,
            started_at: nullableTime,
            completed_at: nullableTime,
            logs: { type: 'string', title: 'Logs', default: '' },
            error: { type: 'string', nullable: true, title: 'Error' },
            status: ref('Status'),
            metrics: { type: 'object', nullable: true, title: 'Metrics' },
          },
        },
        Status: { title: 'Status', description: 'An enumeration.', enum: [...STATUSES], type: 'string' },
        WebhookEvent: { title: 'WebhookEvent', description: 'An enumeration.', enum: [...WEBHOOK_EVENTS], type: 'string' },
        HTTPValidationError: {
          title: 'HTTPValidationError',
          type: 'object',
          properties: { detail: { title: 'Detail', type: 'array', items: ref('ValidationError') } },
        },
        ValidationError: {
          title: 'ValidationError',
          type: 'object',
          required: ['loc', 'msg', 'type'],
          properties: {
            loc: { title: 'Location', type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'integer' }] } },
            msg: { title: 'Message', type: 'string' },
            type: { title: 'Error Type', type: 'string' },
          },
        },
      },
    },
  };
}
