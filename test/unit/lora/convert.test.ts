/**
 * LoRA format conversion (src/lora/convert.ts): names in each format, and every graph linear's
 * low-rank product (α/r)·B·A (and up bias) unchanged, on the built-in TOK LoRA and on small
 * hand-made LoRAs that fuse or split modules with unequal α/r, full-rank fused up matrices,
 * the diffusers/BFL final modulation (whose halves are swapped) and CLIP modules.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_ASSETS } from '../../../src/builtin/tiny-model.js';
import { modelTargets } from '../../../src/cli/convert-command.js';
import { resolveLoras, stackLoras } from '../../../src/lora/apply.js';
import { convertLora, convertLoraFile, type ConvertTargets } from '../../../src/lora/convert.js';
import type { LoraTargets } from '../../../src/lora/flux-targets.js';
import { LoraError, parseLora, type ParsedLora } from '../../../src/lora/formats.js';
import { openTensorSource } from '../../../src/weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/weights/safetensors-writer.js';
import { randomFloats } from '../../helpers/random.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('convert-lora-');
const TOK = join(BUILTIN_ASSETS, 'loras', 'tok.safetensors');
let targets: ConvertTargets;
let files = 0;

beforeAll(async () => {
  targets = await modelTargets(BUILTIN_ASSETS);
});

async function read(path: string): Promise<ParsedLora> {
  return parseLora(await openTensorSource(path), path);
}

async function write(tensors: TensorToWrite[]): Promise<string> {
  const path = join(tmp(), `lora-${files++}.safetensors`);
  await writeSafetensors(path, tensors);
  return path;
}

/** A converted LoRA, written and read back as a file. */
async function converted(lora: ParsedLora, to: 'kohya' | 'peft'): Promise<ParsedLora> {
  return read(await write(convertLora(lora, to, targets).tensors));
}

/** Per graph linear: the dense update Σ (α/r)·B·A, and the up bias when there is one. */
function products(lora: ParsedLora, model: LoraTargets): Map<string, Float64Array> {
  const { updates } = stackLoras(resolveLoras(model, [{ lora, scale: 1 }], { requireMatch: false }));
  const dense = new Map<string, Float64Array>();
  for (const spec of model.linears()) {
    const u = updates.get(spec.name);
    if (u === undefined) continue;
    const [out, inF] = [spec.outFeatures, spec.inFeatures];
    const delta = new Float64Array(out * inF + out);
    for (let o = 0; o < out; o++) {
      for (let k = 0; k < u.rank; k++) {
        const w = (u.up[o * u.rank + k] as number) * (u.factors?.[k] ?? 1);
        if (w !== 0) for (let i = 0; i < inF; i++) delta[o * inF + i] = (delta[o * inF + i] as number) + w * (u.down[k * inF + i] as number);
      }
      delta[out * inF + o] = u.bias?.[o] ?? 0;
    }
    dense.set(spec.name, delta);
  }
  return dense;
}

/** The largest difference between two LoRAs' per-linear products over both models (a linear one does not update counts as zero). */
function maxDifference(a: ParsedLora, b: ParsedLora): number {
  let max = 0;
  for (const model of [targets.transformer, targets.clip]) {
    const [pa, pb] = [products(a, model), products(b, model)];
    for (const name of new Set([...pa.keys(), ...pb.keys()])) {
      const [va, vb] = [pa.get(name), pb.get(name)];
      const length = (va ?? vb)!.length;
      for (let i = 0; i < length; i++) max = Math.max(max, Math.abs((va?.[i] ?? 0) - (vb?.[i] ?? 0)));
    }
  }
  return max;
}

/** The width of the transformer (the in features of a double block's q). */
const hidden = () => targets.transformer.modules('diffusers').get('transformer_blocks.0.attn.to_q')!.inFeatures;
/** The output features of a transformer module named as diffusers does. */
const rowsOf = (module: string) => targets.transformer.modules('diffusers').get(module)!.parts[0]!.rows;

/** One module's random down and up matrices and its alpha, named `base` + the format's suffixes. */
function layer(base: string, names: { down: string; up: string }, inF: number, outF: number, rank: number, alpha: number, seed: number): TensorToWrite[] {
  return [
    { name: base + names.down, dtype: 'F32', shape: [rank, inF], data: randomFloats(rank * inF, seed) },
    { name: base + names.up, dtype: 'F32', shape: [outF, rank], data: randomFloats(outF * rank, seed + 1) },
    { name: `${base}.alpha`, dtype: 'F32', shape: [], data: Float32Array.of(alpha) },
  ];
}
const PEFT = { down: '.lora_A.weight', up: '.lora_B.weight' };
const KOHYA = { down: '.lora_down.weight', up: '.lora_up.weight' };

describe('the built-in TOK LoRA', () => {
  it('converts to kohya names with fused modules, and back to PEFT with the same products', async () => {
    const tok = await read(TOK);
    expect(tok.format).toBe('peft');
    const kohyaPath = await write(convertLora(tok, 'kohya', targets).tensors);
    const kohya = await read(kohyaPath);
    expect(kohya.format).toBe('kohya');
    const names = (await openTensorSource(kohyaPath)).names();
    for (const name of names)
      expect(name).toMatch(/^lora_unet_(double_blocks_\d+_(img|txt)_attn_(qkv|proj)|single_blocks_\d+_linear[12])\.(lora_down\.weight|lora_up\.weight|alpha)$/);
    for (const module of ['double_blocks_0_img_attn_qkv', 'double_blocks_0_txt_attn_qkv', 'single_blocks_0_linear1', 'single_blocks_0_linear2']) {
      for (const suffix of ['lora_down.weight', 'lora_up.weight', 'alpha']) expect(names).toContain(`lora_unet_${module}.${suffix}`);
    }
    // A fused module's rank is its parts' ranks summed; q, k, v (and the MLP input) are one module.
    const rankOf = (lora: ParsedLora, module: string) => lora.layers.find((l) => l.module === module)!.rank;
    const parts = ['to_q', 'to_k', 'to_v'].map((p) => rankOf(tok, `single_transformer_blocks.0.attn.${p}`));
    expect(rankOf(kohya, 'single_blocks_0_linear1')).toBe(parts.reduce((s, r) => s + r, 0) + rankOf(tok, 'single_transformer_blocks.0.proj_mlp'));
    expect(maxDifference(tok, kohya)).toBeLessThanOrEqual(1e-6);

    const back = await converted(kohya, 'peft');
    expect(back.format).toBe('peft');
    // Block-diagonal fused modules split back into their parts at their own ranks.
    const shapes = (lora: ParsedLora) => new Map(lora.layers.map((l) => [l.module, [l.rank, l.inFeatures, l.outFeatures, l.factor]]));
    expect(shapes(back)).toEqual(shapes(tok));
    expect(maxDifference(tok, back)).toBeLessThanOrEqual(1e-6);
  });
});

describe('exact conversion of fused and split modules', () => {
  it('fuses q, k, v with different alpha/rank by scaling their up blocks, and splits them back', async () => {
    const D = hidden();
    const peft = await read(
      await write([
        ...layer('transformer.transformer_blocks.0.attn.to_q', PEFT, D, D, 4, 4, 1),
        ...layer('transformer.transformer_blocks.0.attn.to_k', PEFT, D, D, 2, 8, 3),
        ...layer('transformer.transformer_blocks.0.attn.to_v', PEFT, D, D, 3, 1.5, 5),
        ...layer('transformer.single_transformer_blocks.0.proj_mlp', PEFT, D, rowsOf('single_transformer_blocks.0.proj_mlp'), 2, 2, 7),
      ]),
    );
    const kohya = await converted(peft, 'kohya');
    const qkv = kohya.layers.find((l) => l.module === 'double_blocks_0_img_attn_qkv')!;
    expect([qkv.rank, qkv.factor, qkv.outFeatures]).toEqual([9, 1, 3 * D]);
    // linear1 holds only its MLP rows; its q, k, v rows stay zero.
    const linear1 = kohya.layers.find((l) => l.module === 'single_blocks_0_linear1')!;
    expect([linear1.rank, linear1.factor]).toEqual([2, 1]);
    expect(linear1.up.subarray(0, 3 * D * 2).every((v) => v === 0)).toBe(true);
    expect(maxDifference(peft, kohya)).toBeLessThanOrEqual(1e-6);
    const back = await converted(kohya, 'peft');
    expect(back.layers.map((l) => [l.module, l.rank])).toEqual([
      ['transformer_blocks.0.attn.to_q', 4],
      ['transformer_blocks.0.attn.to_k', 2],
      ['transformer_blocks.0.attn.to_v', 3],
      ['single_transformer_blocks.0.proj_mlp', 2],
    ]);
    expect(maxDifference(peft, back)).toBeLessThanOrEqual(1e-6);
  });

  it('splits a fused module whose up matrix is full by keeping the whole down matrix for each part', async () => {
    const D = hidden();
    const kohya = await read(await write(layer('lora_unet_double_blocks_0_txt_attn_qkv', KOHYA, D, 3 * D, 4, 2, 11)));
    const peft = await converted(kohya, 'peft');
    expect(peft.layers.map((l) => [l.module, l.rank, l.factor])).toEqual(
      ['add_q_proj', 'add_k_proj', 'add_v_proj'].map((m) => [`transformer_blocks.0.attn.${m}`, 4, 0.5]),
    );
    expect(maxDifference(kohya, peft)).toBeLessThanOrEqual(1e-6);
  });

  it('keeps the final modulation exact across the swapped (scale, shift) and (shift, scale) halves', async () => {
    const D = hidden();
    const peft = await read(await write(layer('transformer.norm_out.linear', PEFT, D, 2 * D, 3, 3, 13)));
    const kohya = await converted(peft, 'kohya');
    expect(kohya.layers.map((l) => l.module)).toEqual(['final_layer_adaLN_modulation_1']);
    expect(maxDifference(peft, kohya)).toBeLessThanOrEqual(1e-6);
    expect(maxDifference(peft, await converted(kohya, 'peft'))).toBeLessThanOrEqual(1e-6);
  });

  it('renames CLIP modules both ways and keeps a PEFT up bias, which kohya cannot hold', async () => {
    const clip = targets.clip.modules('clip').get('text_model_encoder_layers_0_mlp_fc1')!;
    const out = clip.parts[0]!.rows;
    const kohya = await read(await write(layer('lora_te1_text_model_encoder_layers_0_mlp_fc1', KOHYA, clip.inFeatures, out, 2, 2, 17)));
    const peftPath = await write(convertLora(kohya, 'peft', targets).tensors);
    expect((await openTensorSource(peftPath)).names()).toContain('text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_A.weight');
    expect(maxDifference(kohya, await read(peftPath))).toBeLessThanOrEqual(1e-6);

    const channels = rowsOf('proj_out');
    const biased = await read(
      await write([
        ...layer('transformer.proj_out', PEFT, hidden(), channels, 2, 2, 19),
        { name: 'transformer.proj_out.lora_B.bias', dtype: 'F32', shape: [channels], data: randomFloats(channels, 23) },
      ]),
    );
    expect(maxDifference(biased, await converted(biased, 'peft'))).toBe(0);
    expect(() => convertLora(biased, 'kohya', targets)).toThrow(/"transformer\.proj_out\.lora_A\.weight": its up bias has no kohya spelling/);
  });
});

describe('what cannot be converted', () => {
  it('names the module the transformer does not have, or the tensors no format holds', async () => {
    const D = hidden();
    const stray = await read(await write(layer('lora_unet_double_blocks_99_img_attn_qkv', KOHYA, D, 3 * D, 2, 2, 29)));
    expect(() => convertLora(stray, 'peft', targets)).toThrow(LoraError);
    expect(() => convertLora(stray, 'peft', targets)).toThrow(
      '"lora_unet_double_blocks_99_img_attn_qkv.lora_down.weight": this FLUX transformer has no module "double_blocks_99_img_attn_qkv"',
    );
    const dora = await read(
      await write([
        ...layer('transformer.proj_out', PEFT, D, rowsOf('proj_out'), 2, 2, 31),
        { name: 'transformer.proj_out.lora_magnitude_vector', dtype: 'F32', shape: [1], data: Float32Array.of(1) },
      ]),
    );
    expect(() => convertLora(dora, 'kohya', targets)).toThrow(/1 tensors belong to no LoRA module .*"transformer\.proj_out\.lora_magnitude_vector"/);
  });

  it('leaves no file behind when the conversion fails', async () => {
    const output = join(tmp(), 'never.safetensors');
    await expect(convertLoraFile(join(tmp(), 'missing.safetensors'), output, 'kohya', targets)).rejects.toThrow(/missing\.safetensors: no such file/);
    expect(await openTensorSource(output).catch(() => null)).toBeNull();
  });
});
