/**
 * Rewrites a LoRA in another file format, exactly: every graph linear keeps its low-rank
 * update (α/r)·B·A. Each input layer is cut into the graph linears it updates (the layout
 * tables of ./flux-targets.ts), and each module of the output format is built from the layers
 * that touch its linears:
 *   A = [A₁ ; A₂ ; …]                     the layers' down matrices stacked (rank Σrⱼ)
 *   B = block matrix                      rows of linear p, columns of layer j: Bⱼ's rows for p
 * so fusing split q, k, v (PEFT → kohya) gives a block-diagonal B, and splitting a fused module
 * (kohya → PEFT) gives each part the rows of B it owns. Rank columns whose B rows are all zero
 * within the output module add nothing and are dropped, which splits a block-diagonal fused
 * module back into its parts' own ranks (and writes no module for a part left all zero). When
 * the layers' α/r differ, each B block is scaled by its α/r and the output's α/r is 1. The
 * output is float32, so no value is rounded.
 */
import { existsSync } from 'node:fs';
import { writeSafetensors, type TensorToWrite } from '../weights/safetensors-writer.js';
import { openTensorSource } from '../weights/safetensors.js';
import { checkShapes } from './apply.js';
import {
  describeFormat,
  KOHYA,
  LoraError,
  parseLora,
  PEFT,
  type LoraFormat,
  type LoraLayer,
  type ModuleNamespace,
  type ParsedLora,
  type Suffixes,
} from './formats.js';
import type { LoraTargets, ModuleTarget, TargetPart } from './flux-targets.js';

export type ConvertFormat = 'kohya' | 'peft';
export const CONVERT_FORMATS: readonly ConvertFormat[] = ['kohya', 'peft'];

/** The models a LoRA's modules are named against: the FLUX transformer and the CLIP text encoder. */
export interface ConvertTargets {
  transformer: LoraTargets;
  clip: LoraTargets;
}

/** How one model's modules are spelled in an output format. */
interface Spelling {
  namespace: ModuleNamespace;
  name(module: string, target: ModuleTarget): string;
}

const SPELLINGS: Record<ConvertFormat, { suffixes: Suffixes; transformer: Spelling; clip: Spelling }> = {
  kohya: {
    suffixes: KOHYA,
    transformer: { namespace: 'kohya', name: (module) => `lora_unet_${module}` },
    clip: { namespace: 'clip', name: (module) => `lora_te1_${module}` },
  },
  peft: {
    suffixes: PEFT,
    transformer: { namespace: 'diffusers', name: (module) => `transformer.${module}` },
    // The CLIP namespace is the HF module path with underscores; its one part is the dotted path.
    clip: { namespace: 'clip', name: (_, target) => `text_encoder.${(target.parts[0] as TargetPart).linear}` },
  },
};

/** One input layer's rows of one graph linear. */
interface Piece {
  layer: LoraLayer;
  from: TargetPart;
}

/** One input layer's share of an output module: its kept rank columns and which of its B rows go where. */
interface Block {
  layer: LoraLayer;
  columns: number[];
  rows: { to: number; from: number; count: number }[];
}

export interface ConvertedLora {
  tensors: TensorToWrite[];
  transformerModules: number;
  clipModules: number;
}

/** Every input layer cut into the graph linears it updates, per model; anything that has no place is an error naming it. */
function piecesOf(lora: ParsedLora, targets: ConvertTargets): Map<LoraTargets, Map<string, Piece[]>> {
  if (lora.layers.length === 0) throw new LoraError(lora.label, `cannot convert: ${describeFormat(lora)}`);
  if (lora.ignored.length > 0) {
    const sample = lora.ignored.slice(0, 5).map((n) => `"${n}"`);
    throw new LoraError(lora.label, `cannot convert: ${lora.ignored.length} tensors belong to no LoRA module either format can hold (${sample.join(', ')})`);
  }
  const byModel = new Map<LoraTargets, Map<string, Piece[]>>([
    [targets.transformer, new Map()],
    [targets.clip, new Map()],
  ]);
  for (const layer of lora.layers) {
    const model = layer.namespace === 'clip' ? targets.clip : targets.transformer;
    const target = model.resolve(layer.namespace, layer.module);
    if (target === undefined) throw new LoraError(lora.label, `"${layer.tensors[0]}": this ${model.label} has no module "${layer.module}"`);
    const pieces = byModel.get(model) as Map<string, Piece[]>;
    for (const from of checkShapes(lora, layer, target.inFeatures, target.parts)) {
      pieces.set(from.linear, [...(pieces.get(from.linear) ?? []), { layer, from }]);
    }
  }
  return byModel;
}

/** The layers feeding an output module, each with the rank columns that reach its rows. */
function blocksOf(target: ModuleTarget, pieces: Map<string, Piece[]>): Block[] {
  const blocks = new Map<LoraLayer, Block>();
  for (const part of target.parts) {
    for (const { layer, from } of pieces.get(part.linear) ?? []) {
      const block = blocks.get(layer) ?? { layer, columns: [], rows: [] };
      block.rows.push({ to: part.rowStart, from: from.rowStart, count: part.rows });
      blocks.set(layer, block);
    }
  }
  const kept: Block[] = [];
  for (const block of blocks.values()) {
    const { up, rank } = block.layer;
    const reaches = (c: number) =>
      block.rows.some(({ from, count }) => {
        for (let i = 0; i < count; i++) if (up[(from + i) * rank + c] !== 0) return true;
        return false;
      });
    const columns = Array.from({ length: rank }, (_, c) => c);
    block.columns = columns.filter(reaches);
    // A layer none of whose columns reaches these rows adds nothing here (the zero rows of a fused
    // module); one whose up matrix is zero everywhere (an untrained LoRA) is kept whole.
    if (block.columns.length === 0 && up.every((v) => v === 0)) block.columns = columns;
    if (block.columns.length > 0) kept.push(block);
  }
  return kept;
}

/** The tensors of one output module named `base`, built from the layers feeding it. */
function moduleTensors(lora: ParsedLora, format: ConvertFormat, base: string, target: ModuleTarget, blocks: Block[]): TensorToWrite[] {
  const suffixes = SPELLINGS[format].suffixes;
  const rank = blocks.reduce((r, b) => r + b.columns.length, 0);
  const out = target.parts.reduce((e, p) => Math.max(e, p.rowStart + p.rows), 0);
  const inFeatures = target.inFeatures;
  const factors = new Set(blocks.map((b) => b.layer.factor));
  const factor = factors.size === 1 ? (blocks[0] as Block).layer.factor : 1;
  const down = new Float32Array(rank * inFeatures);
  const up = new Float32Array(out * rank);
  let bias: Float32Array | undefined;
  let offset = 0;
  for (const { layer, columns, rows } of blocks) {
    const scale = layer.factor / factor;
    for (const [k, c] of columns.entries()) down.set(layer.down.subarray(c * inFeatures, (c + 1) * inFeatures), (offset + k) * inFeatures);
    for (const { to, from, count } of rows) {
      for (let i = 0; i < count; i++) {
        for (const [k, c] of columns.entries()) up[(to + i) * rank + offset + k] = (layer.up[(from + i) * layer.rank + c] as number) * scale;
      }
      if (layer.bias === undefined) continue;
      if (suffixes.bias === undefined) throw new LoraError(lora.label, `"${layer.tensors[0]}": its up bias has no ${format} spelling`);
      bias ??= new Float32Array(out);
      for (let i = 0; i < count; i++) bias[to + i] = (bias[to + i] as number) + (layer.bias[from + i] as number);
    }
    offset += columns.length;
  }
  const tensors: TensorToWrite[] = [
    { name: base + suffixes.down, dtype: 'F32', shape: [rank, inFeatures], data: down },
    { name: base + suffixes.up, dtype: 'F32', shape: [out, rank], data: up },
    { name: `${base}.alpha`, dtype: 'F32', shape: [], data: Float32Array.of(factor * rank) },
  ];
  if (bias !== undefined && suffixes.bias !== undefined) tensors.push({ name: base + suffixes.bias, dtype: 'F32', shape: [out], data: bias });
  return tensors;
}

/** A parsed LoRA's tensors in `format`, with the number of modules written per model. */
export function convertLora(lora: ParsedLora, format: ConvertFormat, targets: ConvertTargets): ConvertedLora {
  const byModel = piecesOf(lora, targets);
  const tensors: TensorToWrite[] = [];
  const count = (model: LoraTargets, spelling: Spelling): number => {
    const pieces = byModel.get(model) as Map<string, Piece[]>;
    let modules = 0;
    for (const [module, target] of model.modules(spelling.namespace)) {
      const blocks = blocksOf(target, pieces);
      if (blocks.length === 0) continue;
      tensors.push(...moduleTensors(lora, format, spelling.name(module, target), target, blocks));
      modules++;
    }
    return modules;
  };
  const transformerModules = count(targets.transformer, SPELLINGS[format].transformer);
  const clipModules = count(targets.clip, SPELLINGS[format].clip);
  return { tensors, transformerModules, clipModules };
}

export interface ConvertReport extends ConvertedLora {
  from: LoraFormat;
}

/**
 * Converts the LoRA file `input` into `output` in `format`. The output is written to a temp file
 * renamed into place, so a failure leaves no partial file; an existing output is an error unless `force`.
 */
export async function convertLoraFile(input: string, output: string, format: ConvertFormat, targets: ConvertTargets, force = false): Promise<ConvertReport> {
  if (!force && existsSync(output)) throw new LoraError(input, `cannot convert: the output ${output} exists (replace it with --force)`);
  const source = await openTensorSource(input);
  const lora = await parseLora(source, input);
  const converted = convertLora(lora, format, targets);
  // Training metadata (trigger words, kohya's ss_*) is kept; PEFT's adapter config would describe the input's modules.
  const metadata = Object.fromEntries(Object.entries(source.metadata).filter(([key]) => key !== 'lora_adapter_metadata'));
  await writeSafetensors(output, converted.tensors, metadata);
  return { ...converted, from: lora.format };
}
