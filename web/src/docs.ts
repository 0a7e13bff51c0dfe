/** /docs: the server's OpenAPI document as two tables, its routes and the model's inputs. */
import { byId, el } from './dom.js';
import { resolve, type Components, type JsonSchema } from './schema.js';

interface OpenApi {
  paths: Record<string, Record<string, { summary?: string }>>;
  components: { schemas: Components & { Input: JsonSchema } };
}

function constraints(schema: JsonSchema): string {
  const parts: string[] = [];
  if (schema.enum !== undefined) parts.push(`one of ${schema.enum.map(String).join(', ')}`);
  if (schema.minimum !== undefined || schema.maximum !== undefined) parts.push(`${schema.minimum ?? '−∞'} to ${schema.maximum ?? '∞'}`);
  if (schema.maxItems !== undefined) parts.push(`at most ${schema.maxItems} items`);
  if (schema.format !== undefined) parts.push(schema.format);
  return parts.join('; ');
}

async function render(): Promise<void> {
  const document_ = (await (await fetch('/openapi.json')).json()) as OpenApi;
  const routes = byId('routes');
  routes.append(el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Method'), el('th', { scope: 'col' }, 'Path'), el('th', { scope: 'col' }, 'What'))));
  const routeRows = Object.entries(document_.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) =>
      el('tr', {}, el('td', {}, method.toUpperCase()), el('td', {}, el('code', {}, path)), el('td', {}, operation.summary ?? '')),
    ),
  );
  routes.append(el('tbody', {}, ...routeRows));

  const input = document_.components.schemas.Input;
  const required = new Set(input.required ?? []);
  const inputs = byId('inputs');
  inputs.append(el('thead', {}, el('tr', {}, ...['Input', 'Type', 'Default', 'Allowed', 'Description'].map((title) => el('th', { scope: 'col' }, title)))));
  const inputRows = Object.entries(input.properties ?? {})
    .map(([name, schema]) => [name, resolve(schema, document_.components.schemas)] as const)
    .sort(([, a], [, b]) => (a['x-order'] ?? 0) - (b['x-order'] ?? 0))
    .map(([name, schema]) =>
      el(
        'tr',
        {},
        el('td', {}, el('code', {}, name), required.has(name) ? ' (required)' : ''),
        el('td', {}, schema.type ?? ''),
        el('td', {}, schema.default === undefined ? '' : JSON.stringify(schema.default)),
        el('td', {}, constraints(schema)),
        el('td', {}, schema.description ?? ''),
      ),
    );
  inputs.append(el('tbody', {}, ...inputRows));
}

void render();
