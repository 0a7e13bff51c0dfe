/**
 * `-i name=value` arguments of `flux-lora predict` → typed inputs. Values are typed by the input
 * schema (a value that does not parse is passed on as text, so validation names the input), and
 * every input that takes a file (image, mask and each LoRA, `loras` items included) accepts the
 * same local path forms: `@path` or a path to an existing file, relative to the working folder.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { INPUT_SCHEMA } from '../predictor/schema.js';
import { UsageError } from './usage-error.js';

type Property = { type?: string; format?: string };
const properties = INPUT_SCHEMA.properties as unknown as Record<string, Property>;
/** Inputs that take a local file on the command line: images, masks, LoRA weights. */
const FILE_INPUTS = new Set([...Object.keys(properties).filter((n) => properties[n]?.format === 'uri'), 'replicate_weights', 'extra_lora']);

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() === true;
}

/**
 * A file input's value with local paths made absolute: `@path` must name a file; any other value
 * that names an existing file is that file; URLs, data URIs and LoRA names pass unchanged.
 */
function localPath(input: string, text: string, cwd: string): string {
  if (text.startsWith('@')) {
    const path = resolve(cwd, text.slice(1));
    if (!isFile(path)) throw new UsageError(`predict: input "${input}": no such file ${text.slice(1)}`);
    return path;
  }
  if (text === '' || text.startsWith('data:') || /^[a-z][a-z0-9+.-]*:/i.test(text)) return text;
  const path = resolve(cwd, text);
  return isFile(path) ? path : text;
}

/** The `loras` list from its JSON text, each item's `weights` read as a file input. */
function parseLoraList(text: string, cwd: string): unknown {
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`predict: input "loras" is not valid JSON (${(error as Error).message}); for example loras='[{"weights":"owner/name","scale":0.8}]'`);
  }
  if (!Array.isArray(list)) return list;
  return list.map((item: unknown, i) => {
    if (item === null || typeof item !== 'object' || typeof (item as { weights?: unknown }).weights !== 'string') return item;
    const lora = item as { weights: string };
    return { ...lora, weights: localPath(`loras[${i}].weights`, lora.weights, cwd) };
  });
}

/** `name=value` → a typed input; values that do not parse keep their text for the validator to report. */
export function parseInputArgument(argument: string, cwd: string): [string, unknown] {
  const eq = argument.indexOf('=');
  if (eq <= 0) throw new UsageError(`predict: -i expects <name>=<value>, got "${argument}"`);
  const name = argument.slice(0, eq);
  const text = argument.slice(eq + 1);
  switch (properties[name]?.type) {
    case 'integer':
      return [name, /^[-+]?\d+$/.test(text) ? Number(text) : text];
    case 'number':
      return [name, text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text];
    case 'boolean':
      return [name, text === 'true' ? true : text === 'false' ? false : text];
    case 'array':
      return [name, parseLoraList(text, cwd)];
    default:
      return [name, FILE_INPUTS.has(name) ? localPath(name, text, cwd) : text];
  }
}
