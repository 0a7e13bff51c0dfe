/**
 * Combines LoRAs and their strengths into a model's per-linear low-rank inputs. LoRA i owns
 * slot i with strength sᵢ; for each graph linear, y += ((x·downᵀ) ⊙ s[slot] ⊙ factor)·upᵀ + s·bias with
 *   down   = [A₁ ; A₂ ; …]         [Σr, in]    (rows copied as stored)
 *   up     = [B₁ | B₂ | …]         [out, Σr]   (B rows restricted to the linear's part)
 *   factor = [α₁/r₁ … ; α₂/r₂ …]   [Σr]
 *   bias   = [b_B₁ ; b_B₂ ; …]     [slots, out]
 * which equals merging W' = W + Σ sᵢ(αᵢ/rᵢ)BᵢAᵢ, b' = b + Σ sᵢ b_Bᵢ (docs/flux-math.md §5.1, §5.4) without
 * touching the base weights or the session; a strength change only rebinds the per-rank scales and bias vectors.
 */
import type { LowRankState, LowRankUpdate } from '../models/common/low-rank.js';
import { describeFormat, LoraError, type LoraLayer, type ParsedLora } from './formats.js';
import type { LoraTargets, TargetPart } from './flux-targets.js';

export interface ScaledLora {
  lora: ParsedLora;
  scale: number;
}

export interface LoraLoadReport {
  label: string;
  format: string;
  /** LoRA tensors applied to the transformer. */
  matchedTensors: number;
  /** Tensors not applied, by name (text-encoder LoRAs until the encoders take them, DoRA scales, strays). */
  unmatched: string[];
}

interface Contribution {
  layer: LoraLayer;
  part: TargetPart;
  slot: number;
}

/** The parts of its target a layer updates, after checking its shapes against the target (a LoraError naming its first tensor otherwise). */
export function checkShapes(lora: ParsedLora, layer: LoraLayer, inFeatures: number, parts: TargetPart[]): TargetPart[] {
  const where = `"${layer.tensors[0]}"`;
  if (layer.inFeatures !== inFeatures) {
    throw new LoraError(lora.label, `${where} has ${layer.inFeatures} input features, but its target takes ${inFeatures}`);
  }
  // An up matrix may cover a prefix of the module's rows (XLabs' single-block qkv LoRA on linear1).
  const covered = parts.filter((p) => p.rowStart + p.rows <= layer.outFeatures);
  const end = covered.reduce((e, p) => Math.max(e, p.rowStart + p.rows), 0);
  if (covered.length === 0 || end !== layer.outFeatures) {
    const total = parts.reduce((e, p) => Math.max(e, p.rowStart + p.rows), 0);
    throw new LoraError(lora.label, `${where} has ${layer.outFeatures} output features, but its target has ${total}`);
  }
  return covered;
}

/** Builds the low-rank update of one linear from its contributions: block copies only, no arithmetic. */
function stack(inFeatures: number, outFeatures: number, slotCount: number, contributions: Contribution[]): LowRankUpdate {
  const rank = contributions.reduce((r, c) => r + c.layer.rank, 0);
  const down = new Float32Array(rank * inFeatures);
  const up = new Float32Array(outFeatures * rank);
  const slots = new Int32Array(rank);
  const factors = new Float32Array(rank);
  let bias: Float32Array | undefined;
  let offset = 0;
  for (const { layer, part, slot } of contributions) {
    const r = layer.rank;
    down.set(layer.down, offset * inFeatures);
    slots.fill(slot, offset, offset + r);
    factors.fill(layer.factor, offset, offset + r);
    const rows = layer.up.subarray(part.rowStart * r, (part.rowStart + outFeatures) * r);
    if (r === rank) up.set(rows);
    else for (let o = 0; o < outFeatures; o++) up.set(rows.subarray(o * r, (o + 1) * r), o * rank + offset);
    if (layer.bias !== undefined) {
      bias ??= new Float32Array(slotCount * outFeatures);
      for (let o = 0; o < outFeatures; o++) bias[slot * outFeatures + o] = (bias[slot * outFeatures + o] as number) + (layer.bias[part.rowStart + o] as number);
    }
    offset += r;
  }
  return bias === undefined ? { rank, down, up, slots, factors } : { rank, down, up, slots, factors, bias };
}

/** Which LoRA layers feed which graph linears, checked, with a report per LoRA; nothing stacked yet. */
export interface ResolvedLoras {
  targets: LoraTargets;
  loras: readonly ParsedLora[];
  slotCount: number;
  scales: number[];
  contributions: Map<string, Contribution[]>;
  reports: LoraLoadReport[];
}

/**
 * Matches every LoRA layer to the graph linears it updates (cheap: no weights copied).
 * Unless `requireMatch` is false (a model only some LoRAs touch, like the text encoder),
 * a LoRA none of whose tensors applies is an error, never a silent no-op.
 */
export function resolveLoras(targets: LoraTargets, loras: readonly ScaledLora[], options: { requireMatch?: boolean } = {}): ResolvedLoras {
  const contributions = new Map<string, Contribution[]>();
  const reports: LoraLoadReport[] = [];
  for (const [slot, { lora, scale }] of loras.entries()) {
    if (!Number.isFinite(scale)) throw new LoraError(lora.label, `scale must be a finite number, got ${scale}`);
    const unmatched = [...lora.ignored];
    let matchedTensors = 0;
    for (const layer of lora.layers) {
      const target = targets.resolve(layer.namespace, layer.module);
      if (target === undefined) {
        unmatched.push(...layer.tensors);
        continue;
      }
      for (const part of checkShapes(lora, layer, target.inFeatures, target.parts)) {
        const list = contributions.get(part.linear) ?? [];
        list.push({ layer, part, slot });
        contributions.set(part.linear, list);
      }
      matchedTensors += layer.tensors.length;
    }
    if (matchedTensors === 0 && options.requireMatch !== false) {
      const sample = unmatched
        .slice(0, 5)
        .map((n) => `"${n}"`)
        .join(', ');
      throw new LoraError(lora.label, `no tensor applies to this ${targets.label} (${describeFormat(lora)}; ${unmatched.length} tensors, e.g. ${sample})`);
    }
    reports.push({ label: lora.label, format: lora.format, matchedTensors, unmatched });
  }
  return { targets, loras: loras.map((l) => l.lora), slotCount: loras.length, scales: loras.map((l) => l.scale), contributions, reports };
}

/** A LoRA's matrices in the order `kept` updates index them: layer i's down at 2i, its up at 2i + 1. */
export function keptArrays(lora: ParsedLora): Float32Array[] {
  return lora.layers.flatMap((layer) => [layer.down, layer.up]);
}

/**
 * A linear updated by one layer of a single LoRA whose matrices the worker keeps (keptArrays
 * under `key`): nothing but the small per-rank vectors is built or sent.
 */
function keptUpdate(key: string, layerIndex: number, outFeatures: number, { layer, part }: Contribution): LowRankUpdate {
  const r = layer.rank;
  const update: LowRankUpdate = {
    rank: r,
    down: new Float32Array(0),
    up: new Float32Array(0),
    slots: new Int32Array(r),
    factors: new Float32Array(r).fill(layer.factor),
    kept: { key, down: 2 * layerIndex, up: 2 * layerIndex + 1, upOffset: part.rowStart * r },
  };
  if (layer.bias !== undefined) update.bias = layer.bias.slice(part.rowStart, part.rowStart + outFeatures);
  return update;
}

/**
 * The low-rank inputs of resolved LoRAs: fresh buffers each call (they may be moved to the
 * worker). With `keptKey`, a single LoRA's matrices are bound from the worker's kept copy.
 */
export function stackLoras(resolved: ResolvedLoras, keptKey?: string): LowRankState {
  const single = keptKey !== undefined && resolved.slotCount === 1 ? resolved.loras[0] : undefined;
  const layerIndex = new Map(single?.layers.map((layer, i) => [layer, i]));
  const updates = new Map<string, LowRankUpdate>();
  for (const spec of resolved.targets.linears()) {
    const contributions = resolved.contributions.get(spec.name);
    if (contributions === undefined) continue;
    const only = contributions.length === 1 ? contributions[0] : undefined;
    const index = only === undefined ? undefined : layerIndex.get(only.layer);
    updates.set(
      spec.name,
      keptKey !== undefined && only !== undefined && index !== undefined
        ? keptUpdate(keptKey, index, spec.outFeatures, only)
        : stack(spec.inFeatures, spec.outFeatures, resolved.slotCount, contributions),
    );
  }
  return { updates, scales: resolved.scales };
}

/** resolveLoras, then stackLoras. */
export function combineLoras(
  targets: LoraTargets,
  loras: readonly ScaledLora[],
  options: { requireMatch?: boolean } = {},
): { state: LowRankState; reports: LoraLoadReport[] } {
  const resolved = resolveLoras(targets, loras, options);
  return { state: stackLoras(resolved), reports: resolved.reports };
}
