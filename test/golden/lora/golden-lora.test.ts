import { describe, expect, it } from 'vitest';
import { combineLoras, keptArrays, resolveLoras, stackLoras } from '../../../src/lora/apply.js';
import { NO_LOW_RANK } from '../../../src/models/common/low-rank.js';
import { FluxLoraTargets } from '../../../src/lora/flux-targets.js';
import { LoraError, parseLora } from '../../../src/lora/formats.js';
import { FluxTransformer, type FluxPrecision } from '../../../src/models/flux/transformer.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { loraCase } from '../../helpers/flux-cases.js';

const worker = useWorker();
const tmp = useTempDir('golden-lora-');

const lora = async (file: string) => parseLora(await SafetensorsFile.open(goldenPath(file)), file);

const CASES: { name: string; files: [string, number][]; format: string }[] = [
  { name: 'peft', files: [['lora_peft_r4.safetensors', 0.7]], format: 'peft' },
  { name: 'kohya', files: [['lora_kohya_r8.safetensors', 0.7]], format: 'kohya' },
  { name: 'kohya_nonblock', files: [['lora_kohya_nonblock_r4.safetensors', 0.7]], format: 'kohya' },
  { name: 'bfl', files: [['lora_bfl_r4.safetensors', 0.7]], format: 'bfl' },
  { name: 'xlabs', files: [['lora_xlabs_r8.safetensors', 0.7]], format: 'xlabs' },
  {
    name: 'pair_peft_kohya',
    files: [
      ['lora_peft_r4.safetensors', 0.7],
      ['lora_kohya_r8.safetensors', -0.4],
    ],
    format: 'peft',
  },
];

async function runCases(layout: 'bfl' | 'diffusers', precision: FluxPrecision, atol: number, rtol: number): Promise<number> {
  const model = await FluxTransformer.load(worker(), goldenPath(`transformer_A_${layout}.safetensors`), { precision, cacheDir: tmp() });
  const targets = new FluxLoraTargets(model.config);
  const { inputs, expected } = await loraCase();
  let worst = 0;
  try {
    for (const c of CASES) {
      const loras = await Promise.all(c.files.map(async ([file, scale]) => ({ lora: await lora(file), scale })));
      const { state, reports } = combineLoras(targets, loras);
      expect(reports[0]?.format).toBe(c.format);
      for (const r of reports) expect(r.unmatched).toEqual([]);
      await model.setLowRank(state);
      const out = (await model.forward(inputs)).data as Float32Array;
      worst = Math.max(worst, expectAllClose(out, await expected(c.name), atol, rtol, `${c.name} (${layout}, ${precision})`));
    }
    // The pair is still bound: silencing its kohya slot by strength alone gives the PEFT case.
    await model.setLowRankScales([0.7, 0]);
    expectAllClose((await model.forward(inputs)).data as Float32Array, await expected('peft'), atol, rtol, `pair with kohya at 0 (${layout}, ${precision})`);
    await model.setLowRank(NO_LOW_RANK);
    expectAllClose(
      (await model.forward(inputs)).data as Float32Array,
      await (await SafetensorsFile.open(goldenPath('lora_cases.safetensors'))).readFloat32('base_expected'),
      atol,
      rtol,
      'base',
    );
  } finally {
    await model.release();
  }
  return worst;
}

describe('LoRA formats against the golden LoRA cases', () => {
  it('applies PEFT, kohya (block and non-block), BFL (with up bias), XLabs and a mixed-sign pair at run time, BFL base layout', async () => {
    expect(await runCases('bfl', 'exact', 1e-5, 1e-5)).toBeLessThan(1e-5);
  });

  it('does the same on the diffusers base layout', async () => {
    expect(await runCases('diffusers', 'exact', 1e-5, 1e-5)).toBeLessThan(1e-5);
  });

  it('works the same way on go_fast 8-bit base weights (within its quantization error)', async () => {
    // Measured up to 0.10 (|expected| ≈ 3.7): the base weights' 8-bit error, not the LoRA path, which stays float32.
    expect(await runCases('bfl', 'int8', 0.15, 0)).toBeLessThan(0.15);
  });

  it('binds a single LoRA from matrices kept in the worker (switching sends only per-rank vectors), equal to sending them', async () => {
    const model = await FluxTransformer.load(worker(), goldenPath('transformer_A_bfl.safetensors'));
    const targets = new FluxLoraTargets(model.config);
    const { inputs, expected } = await loraCase();
    try {
      for (const name of ['kohya', 'bfl', 'xlabs']) {
        const c = CASES.find((x) => x.name === name) as (typeof CASES)[number];
        const [file, scale] = c.files[0] as [string, number];
        const parsed = await lora(file);
        const resolved = resolveLoras(targets, [{ lora: parsed, scale }]);
        await worker().keep(file, keptArrays(parsed));
        const state = stackLoras(resolved, file);
        expect([...state.updates.values()].every((u) => u.kept?.key === file && u.down.length === 0)).toBe(true);
        await model.setLowRank(state, { transfer: true });
        expectAllClose((await model.forward(inputs)).data as Float32Array, await expected(name), 1e-5, 1e-5, `${name} from kept matrices`);
      }
      const missing = stackLoras(resolveLoras(targets, [{ lora: await lora('lora_peft_r4.safetensors'), scale: 1 }]), 'never-kept');
      await expect(model.setLowRank(missing)).rejects.toThrow(/no kept array \d+ of "never-kept" holds \[\d+, \d+\]/);
      await worker().forget('lora_kohya_r8.safetensors');
    } finally {
      await model.release();
    }
  });

  it('reads each format as documented', async () => {
    const peft = await lora('lora_peft_r4.safetensors');
    expect(peft.layers.every((l) => l.namespace === 'diffusers' && l.rank === 4)).toBe(true);
    expect(peft.layers.find((l) => l.module === 'context_embedder')?.factor).toBe(0.5);
    const kohya = await lora('lora_kohya_r8.safetensors');
    expect(new Set(kohya.layers.map((l) => l.factor))).toEqual(new Set([12 / 8]));
    const bfl = await lora('lora_bfl_r4.safetensors');
    expect(
      bfl.layers
        .filter((l) => l.bias !== undefined)
        .map((l) => l.module)
        .sort(),
    ).toEqual(['double_blocks.1.img_attn.qkv', 'final_layer.adaLN_modulation.1', 'single_blocks.0.linear1'].sort());
    expect((await lora('lora_xlabs_r8.safetensors')).layers.every((l) => l.factor === 1 && l.namespace === 'xlabs')).toBe(true);
  });

  it('fails loudly when nothing matches and reports leftovers by name', async () => {
    const model = await FluxTransformer.load(worker(), goldenPath('transformer_A_bfl.safetensors'));
    const targets = new FluxLoraTargets(model.config);
    await model.release();
    const t5 = await parseLora(await SafetensorsFile.open(goldenPath('t5_weights.safetensors')), 't5_weights.safetensors');
    expect(() => combineLoras(targets, [{ lora: t5, scale: 1 }])).toThrow(LoraError);
    expect(() => combineLoras(targets, [{ lora: t5, scale: 1 }])).toThrow(
      /LoRA t5_weights\.safetensors: no tensor applies to this FLUX transformer \(no LoRA down\/up weight pairs in it; 22 tensors, e\.g\. "encoder\./,
    );
    const peft = await lora('lora_peft_r4.safetensors');
    const partial = { ...peft, layers: peft.layers.map((l, i) => (i === 0 ? { ...l, module: 'not_a_module' } : l)) };
    const { reports } = combineLoras(targets, [{ lora: partial, scale: 1 }]);
    expect(reports[0]?.unmatched).toEqual(peft.layers[0]?.tensors);
    const wrongShape = { ...peft, layers: [{ ...(peft.layers[0] as (typeof peft.layers)[number]), inFeatures: 5 }] };
    expect(() => combineLoras(targets, [{ lora: wrongShape, scale: 1 }])).toThrow(/has 5 input features, but its target takes 32/);
    expect(() => combineLoras(targets, [{ lora: peft, scale: NaN }])).toThrow(/scale must be a finite number/);
  });
});
