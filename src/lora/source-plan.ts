/**
 * What to fetch for a remote LoRA source: its cache key, download URL and headers, after any
 * HuggingFace or CivitAI API look-up (each made once per process).
 */
import { createHash } from 'node:crypto';
import { redact, safeFetch } from '../net/safe-fetch.js';
import { bearer, fetchOptions, withoutToken, type CacheSettings } from './cache-policy.js';
import type { RemoteSource, SourceTraits } from './source-errors.js';
import { civitaiDownloadUrl, civitaiModelUrl, huggingFaceFileUrl, huggingFaceListUrl, replicateWeightsUrl } from './sources.js';

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** What to fetch for one source, once any API look-up is done. */
export interface Plan extends SourceTraits {
  key: string;
  /** The download URL (for `data`, the URI itself). */
  url: string;
  headers: Record<string, string>;
}

const API_MAX_BYTES = 32 * 2 ** 20;

export class SourcePlanner {
  /** Look-ups already made in this process: HF repo → its one file, CivitAI model → newest version. */
  private readonly resolved = new Map<string, string>();

  constructor(private readonly settings: CacheSettings) {}

  async plan(source: RemoteSource, traits: SourceTraits, signal: AbortSignal | undefined): Promise<Plan> {
    const { hosts, tokens } = this.settings;
    switch (source.kind) {
      case 'data':
        return { ...traits, key: `data:sha256:${sha256(source.uri)}`, url: source.uri, headers: {} };
      case 'url':
        return { ...traits, key: withoutToken(source.url), url: source.url, headers: {} };
      case 'replicate': {
        const url = replicateWeightsUrl(hosts, source.owner, source.name, source.version);
        return { ...traits, key: url, url, headers: bearer(tokens.replicate) };
      }
      case 'huggingface': {
        const headers = bearer(tokens.huggingface);
        const file = source.file ?? (await this.huggingFaceFile(source.owner, source.repo, source.revision, headers, signal));
        const url = huggingFaceFileUrl(hosts, source.owner, source.repo, source.revision, file);
        return { ...traits, key: url, url, headers };
      }
      case 'civitai': {
        const headers = bearer(tokens.civitai);
        const version = source.version ?? (await this.civitaiVersion(source.model as string, headers, signal));
        const key = civitaiDownloadUrl(hosts, version, source.query);
        const url = source.token === undefined ? key : `${key}${key.includes('?') ? '&' : '?'}token=${encodeURIComponent(source.token)}`;
        return { ...traits, key, url, headers };
      }
    }
  }

  private async getJson(url: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<unknown> {
    const body = await safeFetch(url, fetchOptions(this.settings, API_MAX_BYTES, headers, signal, Math.min(this.settings.timeoutMs, 120_000)));
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw new Error(`unexpected answer (not JSON) from ${redact(url)}`);
    }
  }

  /** The repo's one .safetensors file, through the HuggingFace API (the reference's rule and message). */
  private async huggingFaceFile(
    owner: string,
    repo: string,
    revision: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const memo = `hf:${owner}/${repo}@${revision}`;
    const known = this.resolved.get(memo);
    if (known !== undefined) return known;
    const listing = (await this.getJson(huggingFaceListUrl(this.settings.hosts, owner, repo), headers, signal)) as { siblings?: { rfilename?: unknown }[] };
    if (!Array.isArray(listing.siblings)) throw new Error(`unexpected answer from the HuggingFace API for ${owner}/${repo} (no file list)`);
    const files = listing.siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string' && f.endsWith('.safetensors'));
    if (files.length !== 1 || files[0] === undefined) {
      throw new Error(
        `No *.safetensors file was explicitly specified from the HuggingFace repo ${owner}/${repo} and more than one *.safetensors file was found. Found: [${files.map((f) => `'${f}'`).join(', ')}]`,
      );
    }
    this.resolved.set(memo, files[0]);
    return files[0];
  }

  /** The model's newest version, through the CivitAI API. */
  private async civitaiVersion(model: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<string> {
    const memo = `civitai:${model}`;
    const known = this.resolved.get(memo);
    if (known !== undefined) return known;
    const answer = (await this.getJson(civitaiModelUrl(this.settings.hosts, model), headers, signal)) as { modelVersions?: { id?: unknown }[] };
    const id = Array.isArray(answer.modelVersions) ? answer.modelVersions[0]?.id : undefined;
    if (typeof id !== 'number' && typeof id !== 'string') throw new Error(`CivitAI model ${model} has no downloadable version`);
    const version = String(id);
    if (!/^\d+$/.test(version)) throw new Error(`CivitAI model ${model} has an unexpected version id ${JSON.stringify(version)}`);
    this.resolved.set(memo, version);
    return version;
  }
}
