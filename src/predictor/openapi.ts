/**
 * The prediction schemas as OpenAPI components, the way Cog publishes them: `Input` (the one
 * schema the predictor validates with) and `Output` (a list of image URIs).
 */
import { INPUT_SCHEMA } from './schema.js';

export const OUTPUT_SCHEMA = { type: 'array', title: 'Output', items: { type: 'string', format: 'uri' } } as const;

export function openApiComponents(): { schemas: { Input: typeof INPUT_SCHEMA; Output: typeof OUTPUT_SCHEMA } } {
  return { schemas: { Input: INPUT_SCHEMA, Output: OUTPUT_SCHEMA } };
}

/** A document holding just the schemas (the HTTP server adds its paths to the same components). */
export function openApiSchemaDocument(version: string): object {
  return { openapi: '3.0.2', info: { title: 'flux-lora', version }, paths: {}, components: openApiComponents() };
}
