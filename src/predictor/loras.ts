/**
 * The LoRAs of one request, from the strings users give to low-rank inputs of the models:
 * each source is fetched (through the download cache) and parsed once, then combined for the
 * transformer and for the CLIP text encoder. A LoRA none of whose tensors applies to either is
 * an error naming its input; tensors that apply to neither are logged by name.
 */
import { combineLoras, keptArrays, resolveLoras, stackLoras, type LoraLoadReport, type ResolvedLoras, type ScaledLora } from '../lora/apply.js';
import { ClipLoraTargets, FluxLoraTargets } from '../lora/flux-targets.js';
import { describeFormat, LoraError, parseLora, type ParsedLora } from '../lora/formats.js';
import type { ClipTextConfig } from '../models/text/clip-text.js';
import type { FluxConfig } from '../models/flux/config.js';
import { NO_LOW_RANK, type LowRankState } from '../models/common/low-rank.js';
import { LruCache } from '../util/lru-cache.js';
import { openTensorSource } from '../weights/safetensors.js';
import { InputValidationError } from './inputs.js';

/** Resolves a user's LoRA string (given for `input`) to a local, verified .safetensors file. */
export interface LoraFetcher {
  fetch(input: string, value: string, signal?: AbortSignal): Promise<string>;
}

export interface RequestedLora {
  /** The input the LoRA came from (`replicate_weights`, `extra_lora`, `loras[2]`). */
  input: string;
  source: string;
  /** Effective strength (go_fast already applied). */
  scale: number;
}

export interface PreparedLora {
  input: string;
  path: string;
  lora: ParsedLora;
  scale: number;
}

/** Low-rank states of a request: the LoRA files (`key`) and their strengths. */
export interface LoraPlan {
  /** Identifies the LoRA files in order; under one key, only the strengths can differ. */
  key: string;
  scales: number[];
  /**
   * Stacks the transformer's inputs: fresh buffers each call, to be moved to the worker. With
   * `keptKey`, a single LoRA's matrices come from the worker's kept copy (see `single`).
   */
  transformer(keptKey?: string): LowRankState;
  /** The one LoRA of a single-LoRA plan: its file and the arrays to keep in the worker. */
  single?: { path: string; arrays(): Float32Array[] };
  clip: LowRankState;
  /** Identifies the CLIP state and strengths (empty when no LoRA touches CLIP). */
  clipKey: string;
}

export const NO_LORAS: LoraPlan = { key: '', scales: [], transformer: () => NO_LOW_RANK, clip: NO_LOW_RANK, clipKey: '' };

export class LoraPlanner {
  private readonly parsed = new LruCache<string, Promise<ParsedLora>>(8);
  /** The last LoRA files resolved (and CLIP's small stacked state), reused while they are requested again. */
  private last: { key: string; transformer: ResolvedLoras; clip: LowRankState; reports: [LoraLoadReport, LoraLoadReport][] } | null = null;

  constructor(private readonly fetcher: LoraFetcher) {}

  /** Fetches and parses every requested LoRA; errors name the input. */
  async prepare(requested: readonly RequestedLora[], signal?: AbortSignal): Promise<PreparedLora[]> {
    return Promise.all(
      requested.map(async ({ input, source, scale }) => {
        const path = await this.fetcher.fetch(input, source, signal);
        let lora = this.parsed.get(path);
        if (lora === undefined) {
          lora = openTensorSource(path).then((tensors) => parseLora(tensors, path));
          this.parsed.set(path, lora);
          lora.catch(() => this.parsed.delete(path));
        }
        try {
          // Labelled by the input it came from this time, so errors name that input.
          return { input, path, lora: { ...(await lora), label: input }, scale };
        } catch (error) {
          throw new InputValidationError([{ input, message: `not a usable LoRA: ${(error as Error).message}` }]);
        }
      }),
    );
  }

  /**
   * The transformer and CLIP states for prepared LoRAs, with the load report lines. Matching is
   * redone only when the LoRA files change, and the transformer's inputs are stacked only when
   * they are bound; strengths travel separately.
   */
  plan(loras: readonly PreparedLora[], flux: FluxConfig, clip: ClipTextConfig, log: (line: string) => void): LoraPlan {
    if (loras.length === 0) return NO_LORAS;
    const key = JSON.stringify([loras.map((l) => l.path), flux, clip]);
    const scales = loras.map((l) => l.scale);
    if (this.last?.key !== key) {
      // Matching and stacking do not depend on the strengths (slots carry them).
      const scaled: ScaledLora[] = loras.map((l) => ({ lora: l.lora, scale: l.scale }));
      const fluxResolved = wrap(() => resolveLoras(new FluxLoraTargets(flux), scaled, { requireMatch: false }));
      const clipResult = wrap(() => combineLoras(new ClipLoraTargets(clip), scaled, { requireMatch: false }));
      const reports = loras.map((_, i): [LoraLoadReport, LoraLoadReport] => [
        fluxResolved.reports[i] as LoraLoadReport,
        clipResult.reports[i] as LoraLoadReport,
      ]);
      this.last = { key, transformer: fluxResolved, clip: clipResult.state, reports };
    }
    const last = this.last;
    loras.forEach((l, i) => report(l, ...(last.reports[i] as [LoraLoadReport, LoraLoadReport]), log));
    const clipTouched = last.reports.some(([, c]) => c.matchedTensors > 0);
    const withScales = (state: LowRankState): LowRankState => ({ updates: state.updates, scales });
    return {
      key,
      scales,
      transformer: (keptKey) => withScales(stackLoras(last.transformer, keptKey)),
      ...(loras.length === 1 ? { single: { path: (loras[0] as PreparedLora).path, arrays: () => keptArrays((loras[0] as PreparedLora).lora) } } : {}),
      clip: clipTouched ? withScales(last.clip) : NO_LOW_RANK,
      clipKey: clipTouched ? JSON.stringify([key, scales]) : '',
    };
  }
}

/** LoraError (shape mismatch, bad strength) as a validation error naming the LoRA's input (its label). */
function wrap<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof LoraError) throw new InputValidationError([{ input: error.label, message: error.detail }]);
    throw error;
  }
}

function report(lora: PreparedLora, flux: LoraLoadReport, clip: LoraLoadReport, log: (line: string) => void): void {
  const applied = flux.matchedTensors + clip.matchedTensors;
  const clipUnmatched = new Set(clip.unmatched);
  const unmatched = flux.unmatched.filter((name) => clipUnmatched.has(name));
  if (applied === 0) {
    const sample = unmatched
      .slice(0, 5)
      .map((n) => `"${n}"`)
      .join(', ');
    throw new InputValidationError([
      {
        input: lora.input,
        message: `no tensor of this LoRA applies to FLUX.1 or its CLIP text encoder (${describeFormat(lora.lora)}; ${unmatched.length} tensors, e.g. ${sample})`,
      },
    ]);
  }
  const where = [
    flux.matchedTensors > 0 ? `${flux.matchedTensors} to the transformer` : '',
    clip.matchedTensors > 0 ? `${clip.matchedTensors} to the text encoder` : '',
  ]
    .filter(Boolean)
    .join(', ');
  log(`Loaded LoRA ${lora.input} (${lora.lora.format} format, strength ${Number(lora.scale.toPrecision(6))}): ${applied} tensors applied (${where})`);
  if (unmatched.length > 0) log(`Warning: LoRA ${lora.input}: ${unmatched.length} tensor(s) not applied: ${unmatched.join(', ')}`);
}
