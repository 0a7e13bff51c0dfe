/**
 * The LoRA download cache (docs/decisions.md "LoRA download cache"): entries are keyed on the resolved
 * download URL (never on tokens), stored as `<sha256(key)[:32]>.safetensors`, listed in an index
 * file written atomically so that the LRU order survives restarts, and evicted least recently used
 * first when the folder grows past its size cap. A download goes to a temp file in the folder, is
 * verified as safetensors and only then renamed into place; concurrent requests share one download.
 *
 * One process owns a cache folder at a time: on start it removes files that its index does not
 * list and partial downloads older than the download time cap.
 *
 * This class puts the parts together: the settings and rules (cache-policy.ts), planning a
 * source's download (source-plan.ts), downloading (download.ts), the index (cache-index.ts) and
 * the user-facing errors (source-errors.ts).
 */
import { RunCancelledError } from '../onnx/errors.js';
import { CacheIndex } from './cache-index.js';
import { allowedLocalFile, builtinLoraFile, cacheSettings, type CacheSettings, type LoraCacheOptions } from './cache-policy.js';
import { downloadVerified, SharedDownloads } from './download.js';
import { sourceFailure, sourceTraits } from './source-errors.js';
import { SourcePlanner, type Plan } from './source-plan.js';
import { parseLoraSource } from './sources.js';

export { LoraSourceError, type LoraHosts } from './sources.js';

export class LoraCache {
  private readonly settings: CacheSettings;
  private readonly planner: SourcePlanner;
  private readonly downloads = new SharedDownloads();
  private readonly index: CacheIndex;

  constructor(options: LoraCacheOptions) {
    this.settings = cacheSettings(options);
    this.planner = new SourcePlanner(this.settings);
    this.index = new CacheIndex(this.settings);
  }

  /**
   * A local, verified .safetensors path for the user's string `value` given for input `input`
   * (e.g. "replicate_weights"). Downloads at most once, even for concurrent calls. Throws
   * LoraSourceError naming the input, or RunCancelledError when `signal` aborts.
   */
  async fetch(input: string, value: string, signal?: AbortSignal): Promise<string> {
    const source = parseLoraSource(input, value);
    if (source.kind === 'local') return allowedLocalFile(this.settings.localRoot, input, value, source.path);
    if (source.kind === 'builtin') return builtinLoraFile(this.settings.builtinRoot, input, value, source.name);
    await this.index.load();
    const cancelled = (): RunCancelledError => new RunCancelledError(`the LoRA download for input "${input}"`);
    if (signal?.aborted) throw cancelled();
    const traits = sourceTraits(source);
    let plan: Plan;
    try {
      plan = await this.planner.plan(source, traits, signal);
    } catch (error) {
      if (signal?.aborted) throw cancelled();
      throw sourceFailure(input, value, error, traits);
    }
    const cached = await this.index.lookup(plan.key);
    if (cached !== undefined) return cached;
    try {
      return await this.downloads.join(plan.key, signal, (downloadSignal) => this.download(plan, downloadSignal));
    } catch (error) {
      if (signal?.aborted) throw cancelled();
      throw sourceFailure(input, value, error, traits);
    }
  }

  /** Downloads `plan` into the cache, unless an earlier download stored it meanwhile. */
  private async download(plan: Plan, signal: AbortSignal): Promise<string> {
    const again = await this.index.lookup(plan.key);
    if (again !== undefined) return again;
    return downloadVerified(plan, this.settings, signal, (partial) => this.index.add(plan.key, partial));
  }
}
