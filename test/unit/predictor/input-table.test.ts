import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { INPUT_TABLE_PATH, inputRows, inputTableDocument, inputTableText } from '../../../src/predictor/input-table.js';
import { INPUT_NAMES, INPUT_SCHEMA } from '../../../src/predictor/schema.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

describe('the table of inputs', () => {
  it('is in sync with docs/input-table.md (run `npm run docs:inputs` after changing the schema)', () => {
    expect(readFileSync(`${ROOT}/${INPUT_TABLE_PATH}`, 'utf8')).toBe(inputTableDocument());
    expect(readFileSync(`${ROOT}/README.md`, 'utf8')).toContain(`](${INPUT_TABLE_PATH})`);
  });

  it('has a row per input, in schema order, with its type, default and bounds', () => {
    const rows = inputRows();
    expect(rows.map((r) => r.name)).toEqual(INPUT_NAMES);
    const row = (name: string) => rows.find((r) => r.name === name);
    expect(row('prompt')).toMatchObject({ type: 'text', default: '(required)' });
    expect(row('width')).toMatchObject({ type: 'integer', default: '', range: '256..1440' });
    expect(row('output_format')).toMatchObject({ default: 'webp', range: 'webp, jpg, png' });
    expect(row('num_inference_steps')).toMatchObject({ default: '28 (dev), 4 (schnell)', range: '1..50' });
    expect(row('image')).toMatchObject({ type: 'image' });
    expect(row('extra_lora')).toMatchObject({ type: 'LoRA' });
    const text = inputTableText().split('\n');
    expect(text).toHaveLength(1 + 2 * INPUT_NAMES.length);
    // Every input line starts its type at the same column.
    const typeColumns = new Set(text.filter((l) => /^ {2}\S/.test(l)).map((l) => l.indexOf(' ', 2) + l.slice(l.indexOf(' ', 2)).search(/\S/)));
    expect(typeColumns.size).toBe(1);
  });

  it('describes the inputs in our own words, saying what we do', () => {
    const descriptions = Object.values(INPUT_SCHEMA.properties as unknown as Record<string, { description: string }>).map((p) => p.description);
    const all = descriptions.join('\n');
    // The hosted schema's claims that are false here: custom sizes in bf16, go_fast as fp8, dev's 28 steps for schnell.
    expect(all).not.toMatch(/bf16|fp8|Incompatible with fast generation/);
    expect(all).toContain('4 for schnell');
    for (const d of descriptions) expect(d.length).toBeGreaterThan(10);
  });
});
