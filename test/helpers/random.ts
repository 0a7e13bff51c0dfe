import { seededRandom } from '../../src/util/seeded-random.js';

/** Uniform values in [-scale, scale). */
export function randomFloats(length: number, seed: number, scale = 1): Float32Array {
  const next = seededRandom(seed);
  return Float32Array.from({ length }, () => (next() * 2 - 1) * scale);
}
