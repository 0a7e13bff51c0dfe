/**
 * The prediction schemas as OpenAPI components, the way Cog publishes them (docs/http-api.md
 * §A.15): `Input` (the schema the predictor validates with), `Output` (a list of image URIs),
 * and one component per choice input, named like the input (`aspect_ratio`, `model`,
 * `output_format`, `megapixels`), which the input's property refers to through `allOf` (code
 * generators name their enum types after it).
 */
import { INPUT_SCHEMA } from './schema.js';

export const OUTPUT_SCHEMA = { type: 'array', title: 'Output', items: { type: 'string', format: 'uri' } } as const;

type Property = Record<string, unknown>;

/** `Input` with each choice property replaced by an `allOf` reference, and the enum components it refers to. */
function inputWithEnumComponents(): { input: object; enums: Record<string, object> } {
  const properties: Record<string, Property> = {};
  const enums: Record<string, object> = {};
  for (const [name, property] of Object.entries(INPUT_SCHEMA.properties as Record<string, Property>)) {
    if (property.enum === undefined) {
      properties[name] = property;
      continue;
    }
    const { type, enum: values, ...rest } = property;
    // Siblings of a $ref are not allowed, hence allOf; the title goes (Cog leaves it out too).
    delete rest.title;
    properties[name] = { allOf: [{ $ref: `#/components/schemas/${name}` }], ...rest };
    enums[name] = { title: name, description: 'An enumeration.', enum: values, type };
  }
  return { input: { ...INPUT_SCHEMA, properties }, enums };
}

export function openApiComponents(): { schemas: Record<string, object> } {
  const { input, enums } = inputWithEnumComponents();
  return { schemas: { Input: input, Output: OUTPUT_SCHEMA, ...enums } };
}

/** A document holding just the schemas (the HTTP server adds its paths to the same components). */
export function openApiSchemaDocument(version: string): object {
  return { openapi: '3.0.2', info: { title: 'flux-lora', version }, paths: {}, components: openApiComponents() };
}
