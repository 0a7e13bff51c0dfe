import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../src/onnx/graph.js';
import * as op from '../../../src/onnx/ops/index.js';
import { float32Tensor } from '../../../src/onnx/tensor-data.js';
import { externalRef, floatWeight } from '../../../src/models/common/stored-weights.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, f8e4m3fnToF32, f8e5m2ToF32 } from '../../../src/weights/dtypes.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { writeSafetensors } from '../../../src/weights/safetensors-writer.js';
import { randomFloats } from '../../helpers/random.js';
import { outputData, runOnce, useWorker } from '../../helpers/run-graph.js';

const worker = useWorker();
const dir = mkdtempSync(join(tmpdir(), 'flux-lora-external-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const K = 48;
const N = 40;
const w = randomFloats(K * N, 101);
const b = randomFloats(N, 102);
const x = randomFloats(3 * K, 103);

/** x·W + b with W [K, N], then GELU. */
function mlp(name: string, weight: (g: GraphBuilder) => { w: ReturnType<GraphBuilder['input']>; b: ReturnType<GraphBuilder['input']> }) {
  const g = new GraphBuilder(name);
  const input = g.input('x', 'float32', ['n', K]);
  const p = weight(g);
  g.output(op.gelu(g, op.add(g, op.matmul(g, input, p.w), p.b), 'tanh'), 'y');
  return g.build();
}

async function run(model: ReturnType<typeof mlp>): Promise<Float32Array> {
  return outputData(await runOnce(worker(), model, { x: float32Tensor([3, K], x) }), 'y');
}

describe('initializers as external data inside safetensors files', () => {
  it('gives bit-identical results to the same weights inline, without copying them into the model', async () => {
    const path = join(dir, 'f32.safetensors');
    await writeSafetensors(path, [
      { name: 'bias', dtype: 'F32', shape: [N], data: b },
      { name: 'weight', dtype: 'F32', shape: [K, N], data: w },
    ]);
    const file = await SafetensorsFile.open(path);
    const inline = mlp('inline', (g) => ({ w: g.initializer('w', 'float32', [K, N], w), b: g.initializer('b', 'float32', [N], b) }));
    const external = mlp('external', (g) => ({
      w: floatWeight(g, 'w', externalRef(file.info('weight'))),
      b: floatWeight(g, 'b', externalRef(file.info('bias'))),
    }));
    expect(external.bytes.byteLength).toBeLessThan(1024);
    expect(inline.bytes.byteLength).toBeGreaterThan(K * N * 4);
    expect(external.externalDataFolder).toBe(dir);
    expect(external.castsLowPrecisionInitializers).toBe(false);
    expect(Buffer.from((await run(external)).buffer).equals(Buffer.from((await run(inline)).buffer))).toBe(true);
  });

  it('runs a bf16 file through an in-graph Cast, bit-identical to its exact float32 expansion', async () => {
    const path = join(dir, 'bf16.safetensors');
    const wb = f32ToBf16(w);
    const bb = f32ToBf16(b);
    await writeSafetensors(path, [
      { name: 'weight', dtype: 'BF16', shape: [K, N], data: wb },
      { name: 'bias', dtype: 'BF16', shape: [N], data: bb },
    ]);
    const file = await SafetensorsFile.open(path);
    const external = mlp('bf16', (g) => ({ w: floatWeight(g, 'w', externalRef(file.info('weight'))), b: floatWeight(g, 'b', externalRef(file.info('bias'))) }));
    expect(external.castsLowPrecisionInitializers).toBe(true);
    const expanded = mlp('expanded', (g) => ({
      w: g.initializer('w', 'float32', [K, N], bf16ToF32(wb)),
      b: g.initializer('b', 'float32', [N], bf16ToF32(bb)),
    }));
    expect(Buffer.from((await run(external)).buffer).equals(Buffer.from((await run(expanded)).buffer))).toBe(true);
    // Anchored to the activation (cast just in time, one float32 weight alive at a time): same bits.
    const anchored = (() => {
      const g = new GraphBuilder('bf16-anchored');
      const input = g.input('x', 'float32', ['n', K]);
      const weight = floatWeight(g, 'w', externalRef(file.info('weight')), input);
      expect(weight.shape).toEqual([K, N]);
      g.output(op.gelu(g, op.add(g, op.matmul(g, input, weight), floatWeight(g, 'b', externalRef(file.info('bias')))), 'tanh'), 'y');
      return g.build();
    })();
    expect(anchored.castsLowPrecisionInitializers).toBe(true);
    expect(Buffer.from((await run(anchored)).buffer).equals(Buffer.from((await run(expanded)).buffer))).toBe(true);
  });

  it('casts float8 (E4M3FN, E5M2) and float16 weights exactly in-graph', async () => {
    const path = join(dir, 'f8.safetensors');
    const e4m3 = Uint8Array.from({ length: K * N }, (_, i) => ((i * 37) % 256 === 0x7f || (i * 37) % 256 === 0xff ? 0 : (i * 37) % 256));
    const e5m2 = Uint8Array.from({ length: K * N }, (_, i) => (i * 11) % 120);
    const f16 = f32ToF16(w);
    await writeSafetensors(path, [
      { name: 'e4m3', dtype: 'F8_E4M3', shape: [K, N], data: e4m3 },
      { name: 'e5m2', dtype: 'F8_E5M2', shape: [K, N], data: e5m2 },
      { name: 'f16', dtype: 'F16', shape: [K, N], data: f16 },
    ]);
    const file = await SafetensorsFile.open(path);
    const g = new GraphBuilder('casts');
    for (const name of ['e4m3', 'e5m2', 'f16']) g.output(floatWeight(g, name, externalRef(file.info(name))), `${name}_f32`);
    const out = await runOnce(worker(), g.build(), {});
    expect(outputData(out, 'e4m3_f32')).toEqual(f8e4m3fnToF32(e4m3));
    expect(outputData(out, 'e5m2_f32')).toEqual(f8e5m2ToF32(e5m2));
    expect(outputData(out, 'f16_f32')).toEqual(f16ToF32(f16));
  });

  it('resolves weights in several folders against their common ancestor, through symlinks', async () => {
    const { mkdirSync, symlinkSync } = await import('node:fs');
    mkdirSync(join(dir, 'blobs'));
    mkdirSync(join(dir, 'snapshots', 'rev'), { recursive: true });
    const blob = join(dir, 'blobs', 'abc123');
    await writeSafetensors(blob, [{ name: 'weight', dtype: 'F32', shape: [K, N], data: w }]);
    symlinkSync('../../blobs/abc123', join(dir, 'snapshots', 'rev', 'model.safetensors'));
    const biasPath = join(dir, 'snapshots', 'bias.safetensors');
    await writeSafetensors(biasPath, [{ name: 'bias', dtype: 'F32', shape: [N], data: b }]);
    const weights = await SafetensorsFile.open(join(dir, 'snapshots', 'rev', 'model.safetensors'));
    const bias = await SafetensorsFile.open(biasPath);
    const model = mlp('linked', (g) => ({
      w: floatWeight(g, 'w', externalRef(weights.info('weight'))),
      b: floatWeight(g, 'b', externalRef(bias.info('bias'))),
    }));
    const inline = mlp('inline2', (g) => ({ w: g.initializer('w', 'float32', [K, N], w), b: g.initializer('b', 'float32', [N], b) }));
    expect(Buffer.from((await run(model)).buffer).equals(Buffer.from((await run(inline)).buffer))).toBe(true);
  });
});
