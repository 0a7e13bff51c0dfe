/**
 * The current request as code: curl, JavaScript with the official `replicate` client and Python
 * with the `replicate` package. Each sends the same `input` as the page to the same route; inputs
 * the page holds as files (data URIs from a picked or painted image) are read from local files of
 * the listed names, sent inline as data URIs. Outputs arrive as data URIs or links; the JavaScript
 * and Python snippets write them to out-<i>.<format>. No DOM: the unit tests import it.
 */

export interface SnippetFile {
  fileName: string;
  mimeType: string;
}

export interface SnippetRequest {
  /** The server as the page reaches it, e.g. http://127.0.0.1:5000. */
  baseUrl: string;
  /** owner/name for the Replicate routes. */
  model: string;
  input: Record<string, unknown>;
  /** Top-level inputs sent from local files, by input name. */
  files: Record<string, SnippetFile>;
  /** The extension of the outputs (the output_format input, or its default). */
  format: string;
}

export const TOKEN_VARIABLE = 'FLUX_LORA_API_TOKEN';

type FileExpression = (file: SnippetFile) => string;

/** A JSON-like literal, indented by the style's unit, with file inputs replaced by code. */
function literal(
  value: unknown,
  indent: string,
  style: { keys: 'json' | 'js'; indent: string; true: string; false: string; null: string },
  file?: FileExpression,
  files?: Record<string, SnippetFile>,
): string {
  if (value === null || value === undefined) return style.null;
  if (value === true) return style.true;
  if (value === false) return style.false;
  if (typeof value !== 'object') return JSON.stringify(value);
  const inner = indent + style.indent;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((item) => `${inner}${literal(item, inner, style)}`).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return '{}';
  const key = (name: string) => (style.keys === 'js' && /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name));
  const item = ([name, v]: [string, unknown]) => {
    const local = files?.[name];
    return `${inner}${key(name)}: ${local !== undefined && file !== undefined ? file(local) : literal(v, inner, style)}`;
  };
  return `{\n${entries.map(item).join(',\n')}\n${indent}}`;
}

const JSON_STYLE = { keys: 'json', indent: '  ', true: 'true', false: 'false', null: 'null' } as const;
const JS_STYLE = { keys: 'js', indent: '  ', true: 'true', false: 'false', null: 'null' } as const;
const PYTHON_STYLE = { keys: 'json', indent: '    ', true: 'True', false: 'False', null: 'None' } as const;

const shellQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
/** In an unquoted here-document only `\`, `$` and backquotes are special. */
const hereDocument = (text: string) => text.replace(/[\\$`]/g, (c) => `\\${c}`);

export function curlSnippet(request: SnippetRequest): string {
  return [
    `curl -s -X POST ${shellQuote(`${request.baseUrl}/v1/models/${request.model}/predictions`)} \\`,
    `  -H "Authorization: Bearer $${TOKEN_VARIABLE}" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -H 'Prefer: wait' \\`,
    `  --data-binary @- <<EOF`,
    curlBody(request),
    'EOF',
  ].join('\n');
}

/** The request body for the here-document: JSON text escaped for it, files as (unescaped) command substitutions. */
function curlBody(request: SnippetRequest): string {
  const marker = (name: string) => `@@file:${name}@@`;
  const input = { ...request.input };
  for (const name of Object.keys(request.files)) input[name] = marker(name);
  let text = hereDocument(literal({ input }, '', JSON_STYLE));
  for (const [name, file] of Object.entries(request.files)) {
    const substitution = `"data:${file.mimeType};base64,$(base64 < ${shellQuote(file.fileName)} | tr -d '\\n')"`;
    text = text.replace(JSON.stringify(marker(name)), () => substitution);
  }
  return text;
}

export function javascriptSnippet(request: SnippetRequest): string {
  const hasFiles = Object.keys(request.files).length > 0;
  const file: FileExpression = (f) => `await dataUri(${JSON.stringify(f.fileName)}, ${JSON.stringify(f.mimeType)})`;
  return [
    `import { ${hasFiles ? 'readFile, ' : ''}writeFile } from 'node:fs/promises';`,
    `import Replicate from 'replicate';`,
    '',
    `const replicate = new Replicate({ auth: process.env.${TOKEN_VARIABLE}, baseUrl: ${JSON.stringify(`${request.baseUrl}/v1`)} });`,
    ...(hasFiles ? ["const dataUri = async (path, type) => `data:${type};base64,${(await readFile(path)).toString('base64')}`;"] : []),
    `const input = ${literal(request.input, '', JS_STYLE, file, request.files)};`,
    `const output = await replicate.run(${JSON.stringify(request.model)}, { input });`,
    `for (const [index, file] of output.entries()) await writeFile(\`out-\${index}.${request.format}\`, file);`,
    '',
  ].join('\n');
}

export function pythonSnippet(request: SnippetRequest): string {
  const hasFiles = Object.keys(request.files).length > 0;
  const file: FileExpression = (f) => `data_uri(${JSON.stringify(f.fileName)}, ${JSON.stringify(f.mimeType)})`;
  return [
    ...(hasFiles ? ['import base64'] : []),
    'import os',
    'import pathlib',
    'import urllib.request',
    '',
    'import replicate',
    '',
    ...(hasFiles
      ? ['', 'def data_uri(path, mime_type):', '    return f"data:{mime_type};base64," + base64.b64encode(pathlib.Path(path).read_bytes()).decode()', '', '']
      : []),
    `client = replicate.Client(api_token=os.environ.get(${JSON.stringify(TOKEN_VARIABLE)}), base_url=${JSON.stringify(request.baseUrl)})`,
    `output = client.run(${JSON.stringify(request.model)}, input=${literal(request.input, '', PYTHON_STYLE, file, request.files)}, use_file_output=False)`,
    'for index, url in enumerate(output):  # data: URIs or links; urllib reads both',
    '    with urllib.request.urlopen(url) as response:',
    `        pathlib.Path(f"out-{index}.${request.format}").write_bytes(response.read())`,
    '',
  ].join('\n');
}
