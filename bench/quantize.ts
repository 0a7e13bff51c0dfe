/**
 * Block quantization throughput (8-bit, block 128) on real FLUX linear shapes: one thread, as
 * go_fast's cold start used to run, against the worker pool on every core, same weights, same run.
 * Prints seconds, GB/s of float32 input per wall second and per CPU second of this process (all
 * its threads: on a shared machine the wall rate depends on the other load, the CPU rate does not),
 * and the pool's speed-up. Then, from bf16 as checkpoints store it, on one thread in alternating rounds: the
 * whole linear converted to float32 and quantized (as the pool did) against conversion a slab of rows at a
 * time (quantizeStored, as the pool does now).
 */
import { availableParallelism } from 'node:os';
import { f32ToBf16 } from '../src/weights/dtypes.js';
import { quantizeBlockwise } from '../src/weights/quantize.js';
import { quantizeStored } from '../src/weights/quantize-stored.js';
import { bytesToFloat32 } from '../src/weights/safetensors.js';
import { QuantizePool } from '../src/weights/quantize-pool.js';
import { QUANTIZED_8BIT } from '../src/weights/quantized-cache.js';

// One double block's linears and one single block's (FLUX.1 dims: 3072 hidden, 12288 MLP).
const SHAPES: [number, number][] = [
  [9216, 3072],
  [3072, 3072],
  [12288, 3072],
  [3072, 12288],
  [18432, 3072],
  [21504, 3072],
  [3072, 15360],
];
const options = { bits: QUANTIZED_8BIT.bits, blockSize: QUANTIZED_8BIT.blockSize };
const weights = SHAPES.map(([n, k], i) => Float32Array.from({ length: n * k }, (_, j) => Math.sin(j * 0.618 + i)));
const bytes = weights.reduce((s, w) => s + w.byteLength, 0);

async function timed(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(cpu);
  return { wall: (performance.now() - started) / 1000, cpu: (used.user + used.system) / 1e6 };
}

const single = await timed(async () => {
  for (const [i, [n, k]] of SHAPES.entries()) quantizeBlockwise(weights[i] as Float32Array, n, k, options);
});
const pool = new QuantizePool();
// Started and warm (module loaded, loop compiled) before the clock starts, as during a model load.
const stored = (w: Float32Array, name: string) => ({ bytes: new Uint8Array(w.buffer), dtype: 'F32' as const, file: 'bench', name });
await Promise.all(Array.from({ length: pool.size }, () => pool.quantize(stored(new Float32Array(128 * 256), 'warm-up'), 128, 256, options)));
const copies = weights.map((w) => w.slice());
const pooled = await timed(() => Promise.all(SHAPES.map(([n, k], i) => pool.quantize(stored(copies[i] as Float32Array, `linear ${i}`), n, k, options))));
await pool.close();

const rate = (s: number) => `${(bytes / 1e9 / s).toFixed(2)} GB/s`;
const line = (t: { wall: number; cpu: number }) => `${t.wall.toFixed(2)} s wall (${rate(t.wall)}), ${t.cpu.toFixed(2)} CPU s (${rate(t.cpu)} per CPU second)`;
console.log(`${SHAPES.length} linears, ${(bytes / 2 ** 30).toFixed(2)} GiB float32, ${availableParallelism()} cores`);
console.log(`one thread: ${line(single)}`);
console.log(`pool of ${pool.size}: ${line(pooled)}; ${(single.wall / pooled.wall).toFixed(2)}× one thread's wall time`);

const bf16 = weights.map((w, i) => ({ bytes: new Uint8Array(f32ToBf16(w).buffer), dtype: 'BF16' as const, file: 'bench', name: `linear ${i}` }));
const cpuSeconds = (fn: () => void) => {
  const cpu = process.cpuUsage();
  fn();
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / 1e6;
};
const totals = { whole: 0, slabs: 0 };
for (let round = 0; round < 2; round++) {
  totals.whole += cpuSeconds(() => {
    for (const [i, [n, k]] of SHAPES.entries()) quantizeBlockwise(bytesToFloat32(bf16[i]!.bytes, 'BF16', 'bench', 'whole'), n, k, options);
  });
  totals.slabs += cpuSeconds(() => {
    for (const [i, [n, k]] of SHAPES.entries()) quantizeStored(bf16[i]!, n, k, options);
  });
}
const storedBytes = bf16.reduce((s, w) => s + w.bytes.byteLength, 0) * 2;
console.log(
  `from bf16, one thread, 2 alternating rounds: whole linear to float32 ${totals.whole.toFixed(2)} CPU s (${(storedBytes / 1e9 / totals.whole).toFixed(2)} GB/s of bf16), in slabs ${totals.slabs.toFixed(2)} CPU s (${(storedBytes / 1e9 / totals.slabs).toFixed(2)} GB/s): ${(totals.whole / totals.slabs).toFixed(2)}×`,
);
