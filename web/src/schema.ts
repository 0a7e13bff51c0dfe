/**
 * The form's model, read from the server's /openapi.json: one field per property of `Input`, in
 * `x-order`, with the control its schema calls for. Nothing here names a particular input except
 * through the schema (its types, enums, ranges, `format: uri` for files, and the description's
 * "Only works if `x` is set to y"), so a new input needs no page change. No DOM: the unit tests
 * import it.
 */

export interface JsonSchema {
  type?: string;
  format?: string;
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  title?: string;
  description?: string;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  maxItems?: number;
  'x-order'?: number;
  $ref?: string;
  allOf?: JsonSchema[];
}

export type Components = Record<string, JsonSchema>;

/**
 * A property with its `$ref` and `allOf` parts merged in, as Cog writes enums
 * (`allOf: [{$ref: '#/components/schemas/x'}]`); the referenced schemas' own title and
 * description ("An enumeration.") give way to the property's.
 */
export function resolve(schema: JsonSchema, components: Components): JsonSchema {
  const { $ref, allOf, ...own } = schema;
  const referenced = $ref === undefined ? [] : [resolve(components[$ref.replace('#/components/schemas/', '')] ?? {}, components)];
  const parts = [...referenced, ...(allOf ?? []).map((part) => resolve(part, components))].map(({ title: _title, description: _description, ...rest }) => rest);
  return Object.assign({}, ...parts, own) as JsonSchema;
}

export type FieldKind = 'prompt' | 'text' | 'file' | 'choice' | 'range' | 'number' | 'switch' | 'list';

export interface Field {
  name: string;
  title: string;
  description: string;
  kind: FieldKind;
  required: boolean;
  integer: boolean;
  default?: unknown;
  options: string[];
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  /** LoRA inputs (weights and their scales) are grouped together. */
  lora: boolean;
  /** Shown only while another input has a value: "Only works if `aspect_ratio` is set to custom". */
  shownWhen?: { input: string; value: string };
  /** The fields of each item of a list of objects. */
  items: Field[];
}

/**
 * The choice and value a field applies with, when its description names one of the schema's own
 * choices and values: "with aspect_ratio=custom", or "Only works if `aspect_ratio` is set to custom"
 * (the hosted model's wording).
 */
function shownWhen(description: string, choices: Field[]): Field['shownWhen'] {
  for (const choice of choices) {
    for (const option of choice.options) {
      const escaped = option.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      if (new RegExp(`\`?${choice.name}\`?\\s*(?:=|is set to)\\s*\`?${escaped}\\b`, 'i').test(description)) return { input: choice.name, value: option };
    }
  }
  return undefined;
}

function titleOf(name: string): string {
  return name.replace(/_/g, ' ').replace(/^\w/, (c) => c.toUpperCase());
}

function kindOf(name: string, schema: JsonSchema): FieldKind {
  if (schema.enum !== undefined) return 'choice';
  switch (schema.type) {
    case 'boolean':
      return 'switch';
    case 'integer':
    case 'number':
      return schema.minimum !== undefined && schema.maximum !== undefined ? 'range' : 'number';
    case 'array':
      return 'list';
    default:
      if (schema.format === 'uri') return 'file';
      return /prompt$/.test(name) ? 'prompt' : 'text';
  }
}

function fieldOf(name: string, schema: JsonSchema, required: boolean, components: Components): Field {
  const description = schema.description ?? '';
  const itemSchema = resolve(schema.items ?? {}, components);
  return {
    name,
    title: schema.title ?? titleOf(name),
    description,
    kind: kindOf(name, schema),
    required,
    integer: schema.type === 'integer',
    default: schema.default,
    options: (schema.enum ?? []).map(String),
    minimum: schema.minimum,
    maximum: schema.maximum,
    maxItems: schema.maxItems,
    lora: /lora|weights/.test(name),
    items: fieldsOfObject(itemSchema, components),
  };
}

function fieldsOfObject(schema: JsonSchema, components: Components): Field[] {
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {})
    .map(([name, property]) => [name, resolve(property, components)] as const)
    .sort(([, a], [, b]) => (a['x-order'] ?? 0) - (b['x-order'] ?? 0))
    .map(([name, property]) => fieldOf(name, property, required.has(name), components));
  const choices = fields.filter((field) => field.kind === 'choice');
  for (const field of fields) field.shownWhen = shownWhen(field.description, choices);
  return fields;
}

/** The fields of the `Input` schema of an OpenAPI document as Cog publishes it. */
export function inputFields(openapi: { components?: { schemas?: Record<string, JsonSchema> } }): Field[] {
  const components = openapi.components?.schemas ?? {};
  const input = components.Input;
  if (input === undefined) throw new Error('the OpenAPI document has no Input schema');
  return fieldsOfObject(input, components);
}

/** Whether a field applies given the other values (a `shownWhen` condition holds, or it has none). */
export function isShown(field: Field, values: Record<string, unknown>, fields: Field[]): boolean {
  if (field.shownWhen === undefined) return true;
  const { input, value } = field.shownWhen;
  const other = values[input] ?? fields.find((f) => f.name === input)?.default;
  return String(other) === value;
}

const isEmpty = (value: unknown) => value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0);

/**
 * The `input` a client sends for these values: required inputs, and every other applicable
 * input whose value differs from its default (so the request, and the code snippets, carry
 * only what was chosen).
 */
export function requestInput(fields: Field[], values: Record<string, unknown>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const field of fields) {
    const value = values[field.name];
    if (isEmpty(value) || !isShown(field, values, fields)) continue;
    if (!field.required && JSON.stringify(value) === JSON.stringify(field.default)) continue;
    input[field.name] = value;
  }
  return input;
}

/** The required fields without a value. */
export function missingRequired(fields: Field[], values: Record<string, unknown>): Field[] {
  return fields.filter(
    (field) => field.required && isEmpty(typeof values[field.name] === 'string' ? (values[field.name] as string).trim() : values[field.name]),
  );
}
