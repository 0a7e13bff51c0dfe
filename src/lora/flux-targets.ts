/**
 * Where a LoRA module lands in the FLUX transformer graph: the canonical linears (and row
 * ranges of the module's output) it updates. Built from the same layout tables the
 * checkpoint loader uses, so every spelling of a module — BFL, diffusers, their kohya
 * underscore forms, XLabs — resolves to the graph's split linears (docs/flux-math.md §5.4, §5.6).
 */
import type { FluxConfig } from '../models/flux/config.js';
import { clipLinears, type ClipTextConfig } from '../models/text/clip-text.js';
import { linearSpecs, storedSlice, type FluxLayout } from '../models/flux/layout.js';
import type { LowRankLinear } from '../models/common/low-rank.js';
import type { ModuleNamespace } from './formats.js';

export interface TargetPart {
  /** Canonical linear of the graph. */
  linear: string;
  /** Rows of the LoRA's up matrix (output features of the module) that belong to this linear. */
  rowStart: number;
  rows: number;
}

export interface ModuleTarget {
  inFeatures: number;
  parts: TargetPart[];
}

/** A model's LoRA-capable linears and how LoRA module names resolve onto them. */
export interface LoraTargets {
  /** The model, as error messages name it ("FLUX transformer"). */
  readonly label: string;
  linears(): readonly LowRankLinear[];
  resolve(namespace: ModuleNamespace, module: string): ModuleTarget | undefined;
  /** Every module as `namespace` spells it, in the graph's order (empty for a namespace with no names of its own here, like XLabs). */
  modules(namespace: ModuleNamespace): ReadonlyMap<string, ModuleTarget>;
}

const XLABS_DOUBLE: Record<string, string> = {
  qkv_lora1: 'img_attn.qkv',
  qkv_lora2: 'txt_attn.qkv',
  proj_lora1: 'img_attn.proj',
  proj_lora2: 'txt_attn.proj',
};
const XLABS_SINGLE: Record<string, string> = { qkv_lora: 'linear1', proj_lora: 'linear2' };

const NONE: ReadonlyMap<string, ModuleTarget> = new Map();

function modulesOf(config: FluxConfig, layout: FluxLayout): Map<string, ModuleTarget> {
  const modules = new Map<string, ModuleTarget>();
  for (const spec of linearSpecs(config)) {
    const slice = storedSlice(config, layout, `${spec.name}.weight`, spec.outFeatures);
    const module = slice.key.replace(/\.weight$/, '');
    const target = modules.get(module) ?? { inFeatures: spec.inFeatures, parts: [] };
    target.parts.push({ linear: spec.name, rowStart: slice.rowStart, rows: slice.rows });
    modules.set(module, target);
  }
  for (const target of modules.values()) target.parts.sort((a, b) => a.rowStart - b.rowStart);
  return modules;
}

export class FluxLoraTargets implements LoraTargets {
  readonly label = 'FLUX transformer';
  private readonly bfl: Map<string, ModuleTarget>;
  private readonly diffusers: Map<string, ModuleTarget>;
  private readonly kohya: Map<string, ModuleTarget>;
  private readonly mixture: Map<string, ModuleTarget>;

  constructor(readonly config: FluxConfig) {
    this.bfl = modulesOf(config, 'bfl');
    this.diffusers = modulesOf(config, 'diffusers');
    const underscored = (m: Map<string, ModuleTarget>) => new Map([...m].map(([k, v]) => [k.replace(/\./g, '_'), v]));
    this.kohya = underscored(this.bfl);
    this.mixture = underscored(this.diffusers);
  }

  linears(): readonly LowRankLinear[] {
    return linearSpecs(this.config);
  }

  /** The graph linears a module updates, or undefined when the module is not part of this transformer. */
  resolve(namespace: ModuleNamespace, module: string): ModuleTarget | undefined {
    switch (namespace) {
      case 'xlabs': {
        const m = /^(double_blocks|single_blocks)\.(\d+)\.processor\.(\w+)$/.exec(module);
        const table = m?.[1] === 'double_blocks' ? XLABS_DOUBLE : XLABS_SINGLE;
        const bflModule = m === null ? undefined : table[m[3] as string];
        return bflModule === undefined ? undefined : this.bfl.get(`${m?.[1]}.${m?.[2]}.${bflModule}`);
      }
      default:
        return this.modules(namespace).get(module);
    }
  }

  modules(namespace: ModuleNamespace): ReadonlyMap<string, ModuleTarget> {
    switch (namespace) {
      case 'bfl':
        return this.bfl;
      case 'kohya':
        return this.kohya;
      case 'diffusers':
        return this.diffusers;
      case 'mixture':
        return this.mixture;
      default:
        return NONE;
    }
  }
}

/** CLIP text-encoder LoRAs (`lora_te1_…`, `text_encoder.…`, ComfyUI `clip_l`), named by HF module path with underscores. */
export class ClipLoraTargets implements LoraTargets {
  readonly label = 'CLIP text encoder';
  private readonly clip: Map<string, ModuleTarget>;

  constructor(readonly config: ClipTextConfig) {
    this.clip = new Map(
      clipLinears(config).map((l) => [l.name.replace(/\./g, '_'), { inFeatures: l.inFeatures, parts: [{ linear: l.name, rowStart: 0, rows: l.outFeatures }] }]),
    );
  }

  linears(): readonly LowRankLinear[] {
    return clipLinears(this.config);
  }

  resolve(namespace: ModuleNamespace, module: string): ModuleTarget | undefined {
    return this.modules(namespace).get(module);
  }

  modules(namespace: ModuleNamespace): ReadonlyMap<string, ModuleTarget> {
    return namespace === 'clip' ? this.clip : NONE;
  }
}
