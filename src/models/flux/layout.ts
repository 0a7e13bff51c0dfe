/**
 * The FLUX transformer's parameters under one canonical naming, and where each lives in
 * the two checkpoint layouts users have (docs/flux-math.md §3.3).
 *
 * Canonical names are the BFL module names, except that fused projections are split into
 * the parts the graph computes separately: `img_attn.qkv` → `img_attn.{q,k,v}`,
 * `linear1` → `linear1.{q,k,v,mlp}`, `final_layer.adaLN_modulation.1` → `….{shift,scale}`.
 * A part of a fused tensor is a contiguous row range of it, so it can be referenced in
 * place as external data.
 */
import type { FluxConfig } from './config.js';

export type FluxLayout = 'bfl' | 'diffusers';

/** A linear layer of the graph: weight [out, in] (torch layout) and bias [out]. */
export interface LinearSpec {
  name: string;
  inFeatures: number;
  outFeatures: number;
}

/** Where one canonical tensor is stored: a key, and for parts of fused tensors a row range. */
export interface StoredSlice {
  key: string;
  rowStart: number;
  rows: number;
}

export function linearSpecs(c: FluxConfig): LinearSpec[] {
  const D = c.hidden;
  const specs: LinearSpec[] = [];
  const add = (name: string, inFeatures: number, outFeatures: number) => specs.push({ name, inFeatures, outFeatures });
  add('img_in', c.inChannels, D);
  add('txt_in', c.contextDim, D);
  const embedders = ['time_in', ...(c.guidanceEmbed ? ['guidance_in'] : [])];
  for (const e of embedders) {
    add(`${e}.in_layer`, 256, D);
    add(`${e}.out_layer`, D, D);
  }
  add('vector_in.in_layer', c.pooledDim, D);
  add('vector_in.out_layer', D, D);
  for (let n = 0; n < c.doubleBlocks; n++) {
    for (const stream of ['img', 'txt']) {
      const p = `double_blocks.${n}.${stream}`;
      add(`${p}_mod.lin`, D, 6 * D);
      for (const part of ['q', 'k', 'v']) add(`${p}_attn.${part}`, D, D);
      add(`${p}_attn.proj`, D, D);
      add(`${p}_mlp.0`, D, c.mlpHidden);
      add(`${p}_mlp.2`, c.mlpHidden, D);
    }
  }
  for (let n = 0; n < c.singleBlocks; n++) {
    const p = `single_blocks.${n}`;
    add(`${p}.modulation.lin`, D, 3 * D);
    for (const part of ['q', 'k', 'v']) add(`${p}.linear1.${part}`, D, D);
    add(`${p}.linear1.mlp`, D, c.mlpHidden);
    add(`${p}.linear2`, D + c.mlpHidden, D);
  }
  add('final_layer.adaLN_modulation.1.shift', D, D);
  add('final_layer.adaLN_modulation.1.scale', D, D);
  add('final_layer.linear', D, c.outChannels);
  return specs;
}

/** QK RMSNorm scales, each [headDim]. */
export function normNames(c: FluxConfig): string[] {
  const names: string[] = [];
  for (let n = 0; n < c.doubleBlocks; n++) {
    for (const stream of ['img', 'txt']) {
      for (const which of ['query', 'key']) names.push(`double_blocks.${n}.${stream}_attn.norm.${which}_norm.scale`);
    }
  }
  for (let n = 0; n < c.singleBlocks; n++) {
    for (const which of ['query', 'key']) names.push(`single_blocks.${n}.norm.${which}_norm.scale`);
  }
  return names;
}

const DIFFUSERS_TOP: Record<string, string> = {
  img_in: 'x_embedder',
  txt_in: 'context_embedder',
  'time_in.in_layer': 'time_text_embed.timestep_embedder.linear_1',
  'time_in.out_layer': 'time_text_embed.timestep_embedder.linear_2',
  'guidance_in.in_layer': 'time_text_embed.guidance_embedder.linear_1',
  'guidance_in.out_layer': 'time_text_embed.guidance_embedder.linear_2',
  'vector_in.in_layer': 'time_text_embed.text_embedder.linear_1',
  'vector_in.out_layer': 'time_text_embed.text_embedder.linear_2',
  'final_layer.linear': 'proj_out',
};

const DIFFUSERS_DOUBLE: Record<string, string> = {
  'img_mod.lin': 'norm1.linear',
  'txt_mod.lin': 'norm1_context.linear',
  'img_attn.q': 'attn.to_q',
  'img_attn.k': 'attn.to_k',
  'img_attn.v': 'attn.to_v',
  'txt_attn.q': 'attn.add_q_proj',
  'txt_attn.k': 'attn.add_k_proj',
  'txt_attn.v': 'attn.add_v_proj',
  'img_attn.proj': 'attn.to_out.0',
  'txt_attn.proj': 'attn.to_add_out',
  'img_mlp.0': 'ff.net.0.proj',
  'img_mlp.2': 'ff.net.2',
  'txt_mlp.0': 'ff_context.net.0.proj',
  'txt_mlp.2': 'ff_context.net.2',
  'img_attn.norm.query_norm': 'attn.norm_q',
  'img_attn.norm.key_norm': 'attn.norm_k',
  'txt_attn.norm.query_norm': 'attn.norm_added_q',
  'txt_attn.norm.key_norm': 'attn.norm_added_k',
};

const DIFFUSERS_SINGLE: Record<string, string> = {
  'modulation.lin': 'norm.linear',
  'linear1.q': 'attn.to_q',
  'linear1.k': 'attn.to_k',
  'linear1.v': 'attn.to_v',
  'linear1.mlp': 'proj_mlp',
  linear2: 'proj_out',
  'norm.query_norm': 'attn.norm_q',
  'norm.key_norm': 'attn.norm_k',
};

/** Splits "module.param" (param = weight | bias | scale) of a canonical tensor name. */
function splitParam(name: string): [string, string] {
  const dot = name.lastIndexOf('.');
  return [name.slice(0, dot), name.slice(dot + 1)];
}

/**
 * Location of canonical tensor `name` (e.g. "double_blocks.3.img_attn.k.weight") in the
 * given layout; `rows` is its own row count.
 */
export function storedSlice(c: FluxConfig, layout: FluxLayout, name: string, rows: number): StoredSlice {
  const [module, param] = splitParam(name);
  const D = c.hidden;
  const whole = (key: string): StoredSlice => ({ key, rowStart: 0, rows });
  const block = /^(double_blocks|single_blocks)\.(\d+)\.(.+)$/.exec(module);
  if (layout === 'bfl') {
    const fused = /^(.*\.(?:img_attn|txt_attn))\.([qkv])$|^(.*\.linear1)\.(q|k|v|mlp)$|^(final_layer\.adaLN_modulation\.1)\.(shift|scale)$/.exec(module);
    if (fused === null) return whole(param === 'scale' ? name : `${module}.${param}`);
    const base = fused[1] !== undefined ? `${fused[1]}.qkv` : ((fused[3] ?? fused[5]) as string);
    const part = (fused[2] ?? fused[4] ?? fused[6]) as string;
    const offset = { q: 0, k: D, v: 2 * D, mlp: 3 * D, shift: 0, scale: D }[part] as number;
    return { key: `${base}.${param}`, rowStart: offset, rows };
  }
  const diffusersParam = param === 'scale' ? 'weight' : param;
  if (module.startsWith('final_layer.adaLN_modulation.1.')) {
    // diffusers stores (scale, shift); BFL (shift, scale).
    return { key: `norm_out.linear.${param}`, rowStart: module.endsWith('.shift') ? D : 0, rows };
  }
  if (block === null) return whole(`${DIFFUSERS_TOP[module] as string}.${diffusersParam}`);
  const [, kind, index, rest] = block;
  const table = kind === 'double_blocks' ? DIFFUSERS_DOUBLE : DIFFUSERS_SINGLE;
  const prefix = kind === 'double_blocks' ? 'transformer_blocks' : 'single_transformer_blocks';
  return whole(`${prefix}.${index}.${table[rest as string] as string}.${diffusersParam}`);
}

export interface CanonicalTensor {
  name: string;
  shape: number[];
}

export function canonicalTensors(c: FluxConfig): CanonicalTensor[] {
  const tensors: CanonicalTensor[] = [];
  for (const l of linearSpecs(c)) {
    tensors.push({ name: `${l.name}.weight`, shape: [l.outFeatures, l.inFeatures] });
    tensors.push({ name: `${l.name}.bias`, shape: [l.outFeatures] });
  }
  for (const n of normNames(c)) tensors.push({ name: n, shape: [c.headDim] });
  return tensors;
}

/** The stored keys a checkpoint of this layout and config must hold, with their full shapes. */
export function expectedStoredShapes(c: FluxConfig, layout: FluxLayout): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const t of canonicalTensors(c)) {
    const slice = storedSlice(c, layout, t.name, t.shape[0] as number);
    const end = slice.rowStart + slice.rows;
    const current = shapes.get(slice.key);
    const rows = Math.max(end, current?.[0] ?? 0);
    shapes.set(slice.key, [rows, ...t.shape.slice(1)]);
  }
  return shapes;
}
