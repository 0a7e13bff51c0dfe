import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bf16ToF32, f32ToBf16 } from '../../../src/weights/dtypes.js';
import { quantizeBlockwise } from '../../../src/weights/quantize.js';
import { QUANTIZED_4BIT, QUANTIZED_8BIT, quantizedCache, type QuantizableLinear } from '../../../src/weights/quantized-cache.js';
import { writeSafetensors } from '../../../src/weights/safetensors-writer.js';
import { randomFloats } from '../../helpers/random.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('quantized-cache-');
const SHAPES: [number, number][] = [
  [64, 256],
  [32, 200],
  [96, 128],
  [16, 512],
  [48, 384],
  [8, 1000],
];

/** Linears over fresh random weights that record the order in which they are read. */
function linears(reads: string[], fail?: string): QuantizableLinear[] {
  return SHAPES.map(([n, k], i) => ({
    name: `blocks.${i}.linear`,
    n,
    k,
    read: async () => {
      reads.push(`blocks.${i}.linear`);
      if (`blocks.${i}.linear` === fail) throw new Error('disk read failed');
      return { bytes: new Uint8Array(randomFloats(n * k, 100 + i).buffer), dtype: 'F32' as const, file: 'test', name: `blocks.${i}.linear` };
    },
  }));
}

describe('the quantized-weights cache', () => {
  it('quantizes on the thread pool exactly as one thread does, reading every linear once and in order', async () => {
    for (const settings of [QUANTIZED_8BIT, QUANTIZED_4BIT]) {
      const source = join(tmp(), `source-${settings.bits}.bin`);
      writeFileSync(source, 'identity of the source file');
      const reads: string[] = [];
      const { file, created } = await quantizedCache({ kind: 'test', sourceFiles: [source], linears: linears(reads), settings, cacheDir: tmp() });
      expect(created).toBe(true);
      expect(reads).toEqual(SHAPES.map((_, i) => `blocks.${i}.linear`));
      for (const [i, [n, k]] of SHAPES.entries()) {
        const expected = quantizeBlockwise(randomFloats(n * k, 100 + i), n, k, settings);
        const bytes = async (name: string) => Buffer.from(await file.readBytes(`blocks.${i}.linear.${name}`));
        expect(await bytes('qweight')).toEqual(Buffer.from(expected.data));
        expect(await bytes('scales')).toEqual(Buffer.from(expected.scales.buffer));
        expect(await bytes('zero_points')).toEqual(Buffer.from(expected.zeroPoints));
      }
    }
  });

  it('reuses a complete cache file, derives an incomplete one again, and leaves no file when a read fails', async () => {
    const source = join(tmp(), 'source-reuse.bin');
    writeFileSync(source, 'another source');
    const request = (reads: string[], fail?: string) => ({
      kind: 'test',
      sourceFiles: [source],
      linears: linears(reads, fail),
      settings: QUANTIZED_8BIT,
      cacheDir: tmp(),
    });
    const first = await quantizedCache(request([]));
    const again: string[] = [];
    expect((await quantizedCache(request(again))).created).toBe(false);
    expect(again).toEqual([]);
    // A file of the right format that lacks a linear (a crash of an older writer, a foreign file) is derived again.
    await writeSafetensors(first.file.path, [{ name: 'blocks.0.linear.qweight', dtype: 'U8', shape: [1], data: new Uint8Array(1) }], {
      format: first.file.metadata.format as string,
    });
    const rederived = await quantizedCache(request([]));
    expect(rederived.created).toBe(true);
    expect(rederived.file.has(`blocks.${SHAPES.length - 1}.linear.zero_points`)).toBe(true);
    // So is one whose scales have the wrong dtype (every tensor is checked, not only the weights).
    const tensors = SHAPES.flatMap(([n, k], i) => {
      const kBlocks = Math.ceil(k / QUANTIZED_8BIT.blockSize);
      const zeros = (dtype: 'U8' | 'F16', shape: number[]) => ({
        dtype,
        shape,
        data: new Uint8Array(shape.reduce((a, b) => a * b, 1) * (dtype === 'F16' ? 2 : 1)),
      });
      return [
        { name: `blocks.${i}.linear.qweight`, ...zeros('U8', [n, kBlocks, QUANTIZED_8BIT.blockSize]) },
        { name: `blocks.${i}.linear.scales`, ...zeros('F16', [n * kBlocks]) },
        { name: `blocks.${i}.linear.zero_points`, ...zeros('U8', [n * kBlocks]) },
      ];
    });
    await writeSafetensors(rederived.file.path, tensors, { format: rederived.file.metadata.format as string });
    expect((await quantizedCache(request([]))).created).toBe(true);

    const other = join(tmp(), 'source-failing.bin');
    writeFileSync(other, 'a source whose reads fail');
    const folder = join(tmp(), 'quantized');
    const before = readdirSync(folder).length;
    await expect(quantizedCache({ ...request([], 'blocks.3.linear'), sourceFiles: [other] })).rejects.toThrow('disk read failed');
    expect(readdirSync(folder).length).toBe(before);
  });

  it('converts stored bf16 on the pool thread: the same bytes as converting here and quantizing, also for a row range of a larger tensor', async () => {
    const [n, k] = [48, 256];
    const fused = f32ToBf16(randomFloats(3 * n * k, 7));
    const rows = new Uint8Array(fused.buffer).subarray(n * k * 2, 2 * n * k * 2);
    const source = join(tmp(), 'source-bf16.bin');
    writeFileSync(source, 'bf16 source');
    const linear: QuantizableLinear = { name: 'fused.middle', n, k, read: async () => ({ bytes: rows, dtype: 'BF16', file: source, name: 'fused' }) };
    const { file } = await quantizedCache({ kind: 'test', sourceFiles: [source], linears: [linear], settings: QUANTIZED_8BIT, cacheDir: tmp() });
    const expected = quantizeBlockwise(bf16ToF32(fused.subarray(n * k, 2 * n * k)), n, k, QUANTIZED_8BIT);
    expect(Buffer.from(await file.readBytes('fused.middle.qweight'))).toEqual(Buffer.from(expected.data));
    expect(Buffer.from(await file.readBytes('fused.middle.scales'))).toEqual(Buffer.from(expected.scales.buffer));
    // The caller's tensor is left whole: only the row range was copied out and moved to the thread.
    expect(fused.length).toBe(3 * n * k);
  });
});
