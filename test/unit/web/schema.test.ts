import { describe, expect, it } from 'vitest';
import { openApiComponents } from '../../../src/predictor/openapi.js';
import { inputFields, isShown, missingRequired, requestInput, type Field } from '../../../web/src/schema.js';

const fields = inputFields({ components: openApiComponents() as { schemas: Record<string, object> } });
const field = (name: string): Field => {
  const found = fields.find((f) => f.name === name);
  if (found === undefined) throw new Error(`no field ${name}`);
  return found;
};

describe('the playground form model from the published schema', () => {
  it('has one field per input, in x-order, with the control its schema calls for', () => {
    expect(fields.map((f) => f.name)).toEqual(Object.keys((openApiComponents().schemas.Input as { properties: object }).properties));
    expect(field('prompt')).toMatchObject({ kind: 'prompt', required: true });
    expect(field('image').kind).toBe('file');
    expect(field('mask').kind).toBe('file');
    // Cog writes enums as allOf [$ref]; the field gets the referenced values and keeps its own title.
    expect(field('aspect_ratio')).toMatchObject({ kind: 'choice', default: '1:1' });
    expect(field('aspect_ratio').options).toContain('custom');
    expect(field('output_format').options).toEqual(['webp', 'jpg', 'png']);
    expect(field('num_outputs')).toMatchObject({ kind: 'range', integer: true, minimum: 1, maximum: 4, default: 1 });
    expect(field('guidance_scale')).toMatchObject({ kind: 'range', integer: false });
    expect(field('seed')).toMatchObject({ kind: 'number', integer: true });
    expect(field('go_fast')).toMatchObject({ kind: 'switch', default: false });
    expect(field('loras')).toMatchObject({ kind: 'list', maxItems: 8 });
    expect(field('loras').items.map((f) => [f.name, f.kind, f.required])).toEqual([
      ['weights', 'text', true],
      ['scale', 'range', false],
    ]);
    expect(fields.filter((f) => f.lora).map((f) => f.name)).toEqual(['replicate_weights', 'lora_scale', 'extra_lora', 'extra_lora_scale', 'loras']);
  });

  it('shows width and height with the custom aspect ratio only (read from their descriptions)', () => {
    expect(field('width').shownWhen).toEqual({ input: 'aspect_ratio', value: 'custom' });
    expect(field('height').shownWhen).toEqual({ input: 'aspect_ratio', value: 'custom' });
    expect(isShown(field('width'), {}, fields)).toBe(false);
    expect(isShown(field('width'), { aspect_ratio: 'custom' }, fields)).toBe(true);
    expect(fields.filter((f) => f.shownWhen !== undefined).map((f) => f.name)).toEqual(['height', 'width']);
  });

  it("also reads the hosted model's wording and resolves $ref'd enums", () => {
    const [ratio, width] = inputFields({
      components: {
        schemas: {
          Input: {
            properties: {
              aspect_ratio: { allOf: [{ $ref: '#/components/schemas/aspect_ratio' }], default: '1:1', 'x-order': 0 },
              width: { type: 'integer', description: 'Width. Only works if `aspect_ratio` is set to custom. Rounded to 16.', 'x-order': 1 },
            },
          },
          aspect_ratio: { title: 'aspect_ratio', description: 'An enumeration.', enum: ['1:1', 'custom'], type: 'string' },
        },
      },
    });
    expect(ratio).toMatchObject({ kind: 'choice', title: 'Aspect ratio', description: '', options: ['1:1', 'custom'] });
    expect(width?.shownWhen).toEqual({ input: 'aspect_ratio', value: 'custom' });
  });

  it('sends required inputs and chosen values, never defaults, empty values or inputs that do not apply', () => {
    const values = { prompt: 'a cat', aspect_ratio: '1:1', width: 512, seed: undefined, num_outputs: 1, go_fast: true, loras: [], image: '' };
    expect(requestInput(fields, values)).toEqual({ prompt: 'a cat', go_fast: true });
    expect(requestInput(fields, { ...values, aspect_ratio: 'custom', loras: [{ weights: 'a/b', scale: 1 }] })).toEqual({
      prompt: 'a cat',
      aspect_ratio: 'custom',
      width: 512,
      go_fast: true,
      loras: [{ weights: 'a/b', scale: 1 }],
    });
  });

  it('names the required inputs without a value (blank text counts as none)', () => {
    expect(missingRequired(fields, { prompt: '  ' }).map((f) => f.name)).toEqual(['prompt']);
    expect(missingRequired(fields, { prompt: 'x' })).toEqual([]);
  });

  it('refuses a document without an Input schema', () => {
    expect(() => inputFields({ components: { schemas: {} } })).toThrow('the OpenAPI document has no Input schema');
  });
});
