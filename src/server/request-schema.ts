/**
 * JSON Schemas of the request envelopes (the `input` inside is the predictor's to validate):
 * Fastify validates bodies and path parameters with them, and /openapi.json publishes them.
 * Unknown top-level fields are ignored, as both Cog and the Replicate API do.
 */
import { WEBHOOK_EVENTS } from './prediction.js';

/** Client-chosen prediction ids end up in URLs (upload paths), so they are kept URL-safe. */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$';

const httpUrl = { type: 'string', format: 'uri', pattern: '^https?://', minLength: 1, maxLength: 65536 } as const;

const webhookFields = {
  webhook: { ...httpUrl, nullable: true, title: 'Webhook' },
  webhook_events_filter: {
    type: 'array',
    items: { type: 'string', enum: [...WEBHOOK_EVENTS] },
    maxItems: WEBHOOK_EVENTS.length,
    nullable: true,
    title: 'Webhook Events Filter',
    default: [...WEBHOOK_EVENTS],
  },
} as const;

const input = { type: 'object', nullable: true, title: 'Input' } as const;

export const COG_REQUEST_SCHEMA = {
  type: 'object',
  title: 'PredictionRequest',
  properties: {
    input,
    id: { type: 'string', pattern: ID_PATTERN, nullable: true, title: 'Id' },
    output_file_prefix: { ...httpUrl, maxLength: 4096, nullable: true, title: 'Output File Prefix' },
    ...webhookFields,
  },
} as const;

export const REPLICATE_REQUEST_SCHEMA = {
  type: 'object',
  properties: {
    input,
    version: { type: 'string', minLength: 1, maxLength: 256 },
    ...webhookFields,
  },
} as const;

export interface CogRequest {
  input?: Record<string, unknown> | null;
  id?: string | null;
  output_file_prefix?: string | null;
  webhook?: string | null;
  webhook_events_filter?: (typeof WEBHOOK_EVENTS)[number][] | null;
}

export interface ReplicateRequest extends Pick<CogRequest, 'input' | 'webhook' | 'webhook_events_filter'> {
  version?: string;
}

export const idParams = (name: string) => ({ type: 'object', required: [name], properties: { [name]: { type: 'string', pattern: ID_PATTERN } } }) as const;
