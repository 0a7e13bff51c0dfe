/**
 * The inputs as a table for people: `flux-lora predict --help` prints it as text and
 * docs/input-table.md holds it as Markdown. Both come from INPUT_SCHEMA, so they say what the
 * validator checks (test/unit/predictor/input-table.test.ts keeps the Markdown file in sync).
 */
import { INPUT_SCHEMA } from './schema.js';

interface SchemaProperty {
  type: string;
  format?: string;
  enum?: readonly string[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  description: string;
}

export interface InputRow {
  name: string;
  type: string;
  default: string;
  range: string;
  description: string;
}

const LORA_INPUTS = new Set(['replicate_weights', 'extra_lora']);

function typeOf(name: string, p: SchemaProperty): string {
  if (p.format === 'uri') return 'image';
  if (LORA_INPUTS.has(name)) return 'LoRA';
  return { string: 'text', integer: 'integer', number: 'number', boolean: 'boolean', array: 'list' }[p.type] ?? p.type;
}

function rangeOf(name: string, p: SchemaProperty): string {
  if (p.enum !== undefined) return p.enum.join(', ');
  if (p.minimum !== undefined && p.maximum !== undefined) return `${p.minimum}..${p.maximum}`;
  if (p.maxItems !== undefined) return `up to ${p.maxItems} items`;
  if (p.format === 'uri') return 'file, URL or data: URI';
  if (LORA_INPUTS.has(name)) return 'see the description';
  return '';
}

function defaultOf(name: string, p: SchemaProperty): string {
  if (INPUT_SCHEMA.required.includes(name as 'prompt')) return '(required)';
  // The published default of num_inference_steps is dev's; schnell runs 4 (docs/decisions.md).
  if (name === 'num_inference_steps') return '28 (dev), 4 (schnell)';
  return p.default === undefined ? '' : String(p.default);
}

export function inputRows(): InputRow[] {
  const properties = INPUT_SCHEMA.properties as unknown as Record<string, SchemaProperty>;
  return Object.entries(properties).map(([name, p]) => ({
    name,
    type: typeOf(name, p),
    default: defaultOf(name, p),
    range: rangeOf(name, p),
    description: p.description,
  }));
}

/** A text table: one line of name, type, default and range per input, its description indented below. */
export function inputTableText(): string {
  const rows = inputRows();
  const head = { name: 'input', type: 'type', default: 'default', range: 'range or choices', description: '' };
  const width = (key: 'name' | 'type' | 'default') => Math.max(...[head, ...rows].map((r) => r[key].length));
  const line = (r: InputRow) =>
    `  ${r.name.padEnd(width('name'))}  ${r.type.padEnd(width('type'))}  ${r.default.padEnd(width('default'))}  ${r.range}`.trimEnd();
  return [line(head), ...rows.flatMap((r) => [line(r), `      ${r.description}`])].join('\n');
}

/** The Markdown table of docs/input-table.md (pipes and angle brackets in text escaped). */
export function inputTableMarkdown(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/</g, '&lt;');
  const code = (text: string) => (text === '' ? '' : `\`${text}\``);
  return [
    '| input | type | default | range or choices | what it does |',
    '| --- | --- | --- | --- | --- |',
    ...inputRows().map(
      (r) =>
        `| \`${r.name}\` | ${r.type} | ${r.default.startsWith('(') || r.default.includes(' ') ? r.default : code(r.default)} | ${cell(r.range)} | ${cell(r.description)} |`,
    ),
  ].join('\n');
}

/** Where the Markdown table lives, relative to the repository root. */
export const INPUT_TABLE_PATH = 'docs/input-table.md';

/** The whole of docs/input-table.md. */
export function inputTableDocument(): string {
  return `# Prediction inputs

Generated from \`src/predictor/schema.ts\` by \`npm run docs:inputs\` (a test fails when this file is stale); \`flux-lora predict --help\`
prints the same table. What each input promises in detail is in [inputs.md](inputs.md), and where we differ from the reference
on purpose in [decisions.md](decisions.md).

${inputTableMarkdown()}
`;
}
