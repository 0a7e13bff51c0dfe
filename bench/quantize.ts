/**
 * Block quantization throughput (8-bit, block 128) on real FLUX linear shapes: one thread, as
 * go_fast's cold start used to run, against the worker pool on every core, same weights, same run.
 * Prints seconds, GB/s of float32 input, and the pool's speed-up.
 */
import { availableParallelism } from 'node:os';
import { quantizeBlockwise } from '../src/weights/quantize.js';
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

let started = performance.now();
for (const [i, [n, k]] of SHAPES.entries()) quantizeBlockwise(weights[i] as Float32Array, n, k, options);
const single = (performance.now() - started) / 1000;

const pool = new QuantizePool();
started = performance.now();
await Promise.all(SHAPES.map(([n, k], i) => pool.quantize((weights[i] as Float32Array).slice(), n, k, options)));
const pooled = (performance.now() - started) / 1000;
await pool.close();

const rate = (s: number) => `${(bytes / 1e9 / s).toFixed(2)} GB/s`;
console.log(`${SHAPES.length} linears, ${(bytes / 2 ** 30).toFixed(2)} GiB float32, ${availableParallelism()} cores`);
console.log(`one thread: ${single.toFixed(2)} s (${rate(single)})`);
console.log(`pool of ${pool.size}: ${pooled.toFixed(2)} s (${rate(pooled)}), ${(single / pooled).toFixed(2)}× one thread`);
