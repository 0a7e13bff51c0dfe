import { describe, expect, it } from 'vitest';
import { FluxTransformer, type FluxPrecision } from '../../../src/models/flux/transformer.js';
import { goldenCase } from '../../helpers/flux-cases.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const worker = useWorker();
const tmp = useTempDir('flux-transformer-');

async function maxErrorOverCases(config: 'A' | 'B', layout: 'bfl' | 'diffusers', precision: FluxPrecision, atol: number, rtol: number) {
  const model = await FluxTransformer.load(worker(), goldenPath(`transformer_${config}_${layout}.safetensors`), { precision, cacheDir: tmp() });
  let worst = 0;
  try {
    for (const k of [0, 1, 2]) {
      const { inputs, expected } = await goldenCase(config, k);
      const out = await model.forward(inputs);
      expect(out.dims).toEqual(inputs.hiddenStates.dims);
      worst = Math.max(worst, expectAllClose(out.data as Float32Array, expected, atol, rtol, `${config}/${layout}/${precision} case ${k}`));
    }
  } finally {
    await model.release();
  }
  return worst;
}

describe('FLUX transformer against the golden cases', () => {
  for (const config of ['A', 'B'] as const) {
    for (const layout of ['bfl', 'diffusers'] as const) {
      it(`config ${config} (${config === 'A' ? 'dev-like' : 'schnell-like'}), ${layout} layout, exact: within atol 1e-5 + rtol 1e-5`, async () => {
        const worst = await maxErrorOverCases(config, layout, 'exact', 1e-5, 1e-5);
        expect(worst).toBeLessThan(1e-5);
      });
    }
  }

  // go_fast: weights block-quantized (8-bit blocks of 128, 4-bit blocks of 64) with int8 activations
  // (accuracy level 4). The outputs' |max| is ≈3.8; measured max errors on these uniform-random tiny
  // weights (a worst case for block quantization): 8-bit 0.07 (0.04 with float activations), 4-bit 0.95.
  it('go_fast 8-bit stays within 0.1 of the reference on every case, in both layouts', async () => {
    for (const layout of ['bfl', 'diffusers'] as const) {
      expect(await maxErrorOverCases('A', layout, 'int8', 0.1, 0)).toBeLessThan(0.1);
    }
    expect(await maxErrorOverCases('B', 'bfl', 'int8', 0.1, 0)).toBeLessThan(0.1);
  });

  it('4-bit stays within 1.5 of the reference', async () => {
    expect(await maxErrorOverCases('A', 'bfl', 'int4', 1.5, 0)).toBeLessThan(1.5);
  });

  it('derives the quantized weights once and reuses the cache on the next load', async () => {
    const cacheDir = tmp();
    const first = await FluxTransformer.load(worker(), goldenPath('transformer_B_diffusers.safetensors'), { precision: 'int8', cacheDir });
    const second = await FluxTransformer.load(worker(), goldenPath('transformer_B_diffusers.safetensors'), { precision: 'int8', cacheDir });
    expect(second.report.quantizedCachePath).toBe(first.report.quantizedCachePath);
    expect([first.report.quantizedCacheCreated, second.report.quantizedCacheCreated]).toEqual([expect.any(Boolean), false]);
    const { inputs } = await goldenCase('B', 0);
    expect((await second.forward(inputs)).data).toEqual((await first.forward(inputs)).data);
    await first.release();
    await second.release();
  });

  it('detects each layout and reads the config of both', async () => {
    const bfl = await FluxTransformer.load(worker(), goldenPath('transformer_A_bfl.safetensors'));
    const diffusers = await FluxTransformer.load(worker(), goldenPath('transformer_A_diffusers.safetensors'));
    expect(bfl.checkpoint.layout).toBe('bfl');
    expect(diffusers.checkpoint.layout).toBe('diffusers');
    expect(bfl.config).toEqual(diffusers.config);
    expect(bfl.config).toMatchObject({ hidden: 32, heads: 2, headDim: 16, doubleBlocks: 2, singleBlocks: 2, guidanceEmbed: true, axesDims: [4, 6, 6] });
    await bfl.release();
    await diffusers.release();
  });
});
