/**
 * A user's LoRA string (`replicate_weights`, `extra_lora`) → where the weights come from.
 *
 * The rules follow docs/reference-behaviour.md §4.9.1 with the docs/decisions.md fixes: scheme-less URLs are
 * the URLs they spell (`replicate.com/a/b`, `example.com/x.safetensors`), CivitAI model pages name a
 * model whose newest version is looked up (a `modelVersionId` query wins), any http(s) `.tar` URL is
 * a tarball, and local paths are accepted inside an operator-chosen folder only.
 */
import { fileURLToPath } from 'node:url';
import { redact } from '../net/safe-fetch.js';

export class LoraSourceError extends Error {
  constructor(
    readonly input: string,
    readonly detail: string,
  ) {
    super(`input "${input}": ${detail}`);
    this.name = 'LoraSourceError';
  }
}

/** Base URLs of the LoRA hosts (tests point them at local fakes). */
export interface LoraHosts {
  replicate: string;
  huggingface: string;
  civitai: string;
}

export const DEFAULT_LORA_HOSTS: LoraHosts = {
  replicate: 'https://replicate.com',
  huggingface: 'https://huggingface.co',
  civitai: 'https://civitai.com',
};

export type LoraSource =
  /** `data:` URI: base64 of a tar holding one .safetensors, or of a .safetensors file. */
  | { kind: 'data'; uri: string }
  /** A HuggingFace repo; `file` absent means "the repo's only .safetensors file". */
  | { kind: 'huggingface'; owner: string; repo: string; revision: string; file?: string }
  /** A CivitAI model; `version` absent means "its newest version"; `query` absent means the SafeTensor model file. */
  | { kind: 'civitai'; model?: string; version?: string; query?: string; token?: string }
  /** A Replicate model (latest version) or model version; the `_weights` URL redirects to a tar. */
  | { kind: 'replicate'; owner: string; name: string; version?: string }
  /** Any other http(s) URL of a .safetensors file or a tar archive. */
  | { kind: 'url'; url: string; format: 'safetensors' | 'tar' }
  /** A file on this machine (allowed only inside the operator's LoRA folder). */
  | { kind: 'local'; path: string }
  /** `builtin:<name>`: a LoRA shipped with the built-in demo model (e.g. `builtin:tok`). */
  | { kind: 'builtin'; name: string };

const HF_SYNTAX = 'Failed to parse HuggingFace URL. Expected huggingface.co/<owner>/<model-name>[/<lora-weights-file.safetensors>]';
const CIVITAI_SYNTAX = 'Failed to parse CivitAI URL. Expected civitai.com/models/<id>[/<model-name>]';
const GENERAL_SYNTAX = [
  'Failed to parse URL. Expected either:',
  '* Replicate model in the format <owner>/<model-name> or <owner>/<model-name>/<version>',
  '* HuggingFace URL in the format huggingface.co/<owner>/<model-name>[/<lora-weights-file.safetensors>]',
  '* CivitAI URL in the format civitai.com/models/<id>[/<model-name>]',
  '* Arbitrary .safetensors or .tar URLs from the Internet',
  '* a data: URI of a .safetensors file or of a tar archive holding one',
  "* a path inside the server's LoRA folder (when the operator allows local files)",
  '* builtin:<name>, a LoRA shipped with the built-in demo model (builtin:tok)',
].join('\n');

/** A short, secret-free rendering of the user's string for messages. */
export function describeSource(value: string): string {
  if (value.startsWith('data:')) return `data URI of ${value.length} characters`;
  if (/^https?:\/\//i.test(value)) return redact(value);
  return value.length > 200 ? `${value.slice(0, 200)}…` : value;
}

/** Replicate owner, model and version names; an owner has no dot, which tells `owner/name` from `host/path`. */
const OWNER = '[A-Za-z0-9_-]+';
const NAME = '[A-Za-z0-9._-]+';
const REPLICATE_ID = new RegExp(`^(${OWNER})/(${NAME})(?:/(?:versions/)?(${NAME}))?/?$`);
/** First segment of a scheme-less URL: a host name with a dot (optionally a port). */
const SCHEMELESS_HOST = /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?(\/|$)/;
const HF_PART = /^[A-Za-z0-9._-]+$/;
const DIGITS = /^\d+$/;
const BUILTIN_NAME = /^[a-z0-9_-]+$/;

function segments(pathname: string): string[] {
  const parts = pathname.split('/').slice(1);
  if (parts.at(-1) === '') parts.pop();
  return parts.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
}

function parseHuggingFace(url: URL): LoraSource | undefined {
  const parts = segments(url.pathname);
  const [owner, repo, third, revision, ...rest] = parts;
  if (owner === undefined || repo === undefined || !HF_PART.test(owner) || !HF_PART.test(repo)) return undefined;
  if (parts.length === 2) return { kind: 'huggingface', owner, repo, revision: 'main' };
  if (parts.length === 3 && third !== undefined && third.endsWith('.safetensors') && HF_PART.test(third)) {
    return { kind: 'huggingface', owner, repo, revision: 'main', file: third };
  }
  // https://huggingface.co/o/r/resolve/<rev>/<path>.safetensors (and the /blob/ page of the same file)
  if ((third === 'resolve' || third === 'blob') && revision !== undefined && rest.length > 0) {
    const file = rest.join('/');
    if (file.endsWith('.safetensors') && rest.every((p) => p !== '..' && p !== '.' && p !== '')) {
      return { kind: 'huggingface', owner, repo, revision, file };
    }
  }
  return undefined;
}

function parseCivitai(url: URL): LoraSource | undefined {
  const parts = segments(url.pathname);
  if (parts[0] === 'models' && parts[1] !== undefined && DIGITS.test(parts[1]) && parts.length <= 3) {
    const version = url.searchParams.get('modelVersionId');
    if (version !== null && !DIGITS.test(version)) return undefined;
    return version === null ? { kind: 'civitai', model: parts[1] } : { kind: 'civitai', model: parts[1], version };
  }
  if (parts.length === 4 && parts[0] === 'api' && parts[1] === 'download' && parts[2] === 'models' && parts[3] !== undefined && DIGITS.test(parts[3])) {
    const query = new URLSearchParams(url.searchParams);
    const token = query.get('token');
    query.delete('token');
    // Kept as given (an empty query stays empty), less the token.
    return { kind: 'civitai', version: parts[3], query: query.toString(), ...(token === null ? {} : { token }) };
  }
  return undefined;
}

function parseReplicatePath(path: string): LoraSource | undefined {
  const match = REPLICATE_ID.exec(path);
  if (match === null) return undefined;
  const [, owner, name, version] = match as unknown as [string, string, string, string | undefined];
  if (version === 'versions') return undefined;
  return version === undefined ? { kind: 'replicate', owner, name } : { kind: 'replicate', owner, name, version };
}

function hostOf(url: URL): string {
  return url.hostname.toLowerCase();
}

/**
 * Parses a user string for input `input` (e.g. `replicate_weights`). Throws LoraSourceError with the
 * reference's messages when the string names no supported source.
 */
export function parseLoraSource(input: string, value: string): LoraSource {
  const fail = (detail: string): never => {
    throw new LoraSourceError(input, detail);
  };
  if (value.startsWith('data:')) {
    const comma = value.indexOf(',');
    if (comma < 0 || !/;base64$/i.test(value.slice(0, comma))) return fail(`${describeSource(value)}: a data URI must be base64 (data:<type>;base64,<data>)`);
    return { kind: 'data', uri: value };
  }
  if (value.startsWith('builtin:')) {
    const name = value.slice('builtin:'.length);
    if (!BUILTIN_NAME.test(name)) return fail(`${describeSource(value)}: a built-in LoRA is named builtin:<name> with lower-case letters, digits, - or _`);
    return { kind: 'builtin', name };
  }
  if (value.startsWith('file://')) {
    try {
      return { kind: 'local', path: fileURLToPath(value) };
    } catch (error) {
      return fail(`${describeSource(value)} is not a valid file URL: ${(error as Error).message}`);
    }
  }
  if (value.startsWith('/') || value.startsWith('./') || value.startsWith('../')) return { kind: 'local', path: value };

  const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value);
  if (!hasScheme) {
    const replicate = parseReplicatePath(value);
    if (replicate !== undefined) return replicate;
  }
  let url: URL | undefined;
  if (hasScheme || SCHEMELESS_HOST.test(value)) {
    try {
      url = new URL(hasScheme ? value : `https://${value}`);
    } catch {
      url = undefined;
    }
  }
  if (url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '') {
    const host = hostOf(url);
    if (host === 'huggingface.co') return parseHuggingFace(url) ?? fail(HF_SYNTAX);
    if (host === 'civitai.com' || host === 'www.civitai.com') return parseCivitai(url) ?? fail(CIVITAI_SYNTAX);
    const path = url.pathname.toLowerCase();
    if (path.endsWith('.safetensors')) return { kind: 'url', url: url.href, format: 'safetensors' };
    if (path.endsWith('.tar') || path.endsWith('.tar.gz') || path.endsWith('.tgz')) return { kind: 'url', url: url.href, format: 'tar' };
    if (host === 'replicate.com' || host === 'www.replicate.com') {
      const replicate = parseReplicatePath(url.pathname.slice(1));
      if (replicate !== undefined && url.search === '') return replicate;
    }
  }
  if (value.includes('huggingface.co')) return fail(HF_SYNTAX);
  if (value.includes('civitai.com')) return fail(CIVITAI_SYNTAX);
  return fail(`${GENERAL_SYNTAX}\nGot: ${describeSource(value)}`);
}

function join(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/${path}`;
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** The HuggingFace API URL that lists a repo's files. */
export function huggingFaceListUrl(hosts: LoraHosts, owner: string, repo: string): string {
  return join(hosts.huggingface, `api/models/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}`);
}

export function huggingFaceFileUrl(hosts: LoraHosts, owner: string, repo: string, revision: string, file: string): string {
  return join(hosts.huggingface, `${encodeURIComponent(owner)}/${encodeURIComponent(repo)}/resolve/${encodeURIComponent(revision)}/${encodePath(file)}`);
}

export function civitaiModelUrl(hosts: LoraHosts, model: string): string {
  return join(hosts.civitai, `api/v1/models/${model}`);
}

export function civitaiDownloadUrl(hosts: LoraHosts, version: string, query = 'type=Model&format=SafeTensor'): string {
  return join(hosts.civitai, `api/download/models/${version}${query === '' ? '' : `?${query}`}`);
}

export function replicateWeightsUrl(hosts: LoraHosts, owner: string, name: string, version?: string): string {
  const model = `${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
  return join(hosts.replicate, version === undefined ? `${model}/_weights` : `${model}/versions/${encodeURIComponent(version)}/_weights`);
}
