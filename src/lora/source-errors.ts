/**
 * How a failed LoRA fetch is told to the user: per source, the reference's messages for HTTP
 * answers and the token setting that could help, as a LoraSourceError naming the input.
 */
import { FetchError } from '../net/safe-fetch.js';
import { RunCancelledError } from '../onnx/errors.js';
import { SafetensorsError } from '../weights/safetensors.js';
import { describeSource, LoraSourceError, type LoraSource } from './sources.js';

export type RemoteSource = Exclude<LoraSource, { kind: 'local' } | { kind: 'builtin' }>;

/** How failures of one source are told: the reference's messages depend on the host. */
export interface SourceTraits {
  format: 'safetensors' | 'tar' | 'data';
  /** The message for an HTTP 404. */
  notFound: string;
  /** Which token setting could help with a 401/403 ('' for none). */
  tokenHint: string;
  huggingFace: boolean;
}

const AUTH_FAILED = 'Authorization to download weights failed. Please check to see if an API key is needed and if so pass in with the URL.';
const NOT_FOUND = 'Weights not found at the supplied URL. Please check the URL.';
const CIVITAI_NOT_FOUND =
  'Model not found on CivitAI at that URL. Double check the CivitAI model ID; the id on the download link can be different than the id to browse to the model page.';

export function sourceTraits(source: RemoteSource): SourceTraits {
  const plain = { notFound: NOT_FOUND, tokenHint: '', huggingFace: false };
  switch (source.kind) {
    case 'data':
      return { ...plain, format: 'data' };
    case 'url':
      return { ...plain, format: source.format };
    case 'replicate':
      return { ...plain, format: 'tar', tokenHint: 'REPLICATE_API_TOKEN' };
    case 'huggingface':
      return { ...plain, format: 'safetensors', tokenHint: 'HF_TOKEN', huggingFace: true };
    case 'civitai':
      return { format: 'safetensors', notFound: CIVITAI_NOT_FOUND, tokenHint: 'CIVITAI_TOKEN', huggingFace: false };
  }
}

/** An error's message, without the file name a SafetensorsError puts in front. */
export function errorDetail(error: unknown): string {
  if (error instanceof SafetensorsError) return error.message.startsWith(`${error.file}: `) ? error.message.slice(error.file.length + 2) : error.message;
  return (error as Error).message;
}

/** Why a file is not usable safetensors, saying so first: "not a safetensors file: …" or "not a valid .safetensors file: …". */
export function invalidSafetensorsDetail(error: unknown): string {
  const detail = errorDetail(error);
  return detail.startsWith('not a safetensors file') ? detail : `not a valid .safetensors file: ${detail}`;
}

/** A failure as the LoraSourceError the user sees, with the reference's messages for HTTP answers. */
export function sourceFailure(input: string, value: string, error: unknown, traits: SourceTraits): Error {
  if (error instanceof LoraSourceError || error instanceof RunCancelledError) return error;
  let message: string;
  if (error instanceof FetchError && (error.status === 401 || error.status === 403)) {
    const hint = traits.tokenHint === '' ? '' : ` (Or set ${traits.tokenHint} on the server.)`;
    message = `${AUTH_FAILED}${hint} (HTTP ${error.status})`;
  } else if (error instanceof FetchError && error.status === 404) {
    message = traits.notFound;
  } else if (error instanceof FetchError) {
    message = `Failed to download ${traits.format === 'tar' ? 'tarball' : 'safetensors file'}: ${error.message}`;
  } else {
    message = errorDetail(error);
  }
  if (traits.huggingFace) message = `Failed to download from HuggingFace: ${message}`;
  return new LoraSourceError(input, `${describeSource(value)}: ${message}`);
}
