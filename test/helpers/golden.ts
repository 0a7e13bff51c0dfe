/** Access to the golden reference data (test/golden/data) and the tolerance rule of its README (§7). */
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const GOLDEN_DIR = fileURLToPath(new URL('../golden/data/', import.meta.url));

export const goldenPath = (name: string): string => `${GOLDEN_DIR}${name}`;

/** Largest |actual − expected| − (atol + rtol·|expected|) over all elements; ≤ 0 means within tolerance. */
export function worstExcess(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): { excess: number; maxAbs: number } {
  expect(actual.length).toBe(expected.length);
  let excess = -Infinity;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    const diff = Math.abs((actual[i] as number) - e);
    if (!(diff <= Infinity)) return { excess: Infinity, maxAbs: Infinity };
    maxAbs = Math.max(maxAbs, diff);
    excess = Math.max(excess, diff - (atol + rtol * Math.abs(e)));
  }
  return { excess, maxAbs };
}

/** Asserts elementwise |actual − expected| ≤ atol + rtol·|expected|. Returns the max abs error. */
export function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, label = ''): number {
  const { excess, maxAbs } = worstExcess(actual, expected, atol, rtol);
  expect(excess, `${label}: max abs error ${maxAbs.toExponential(2)} exceeds atol ${atol} + rtol ${rtol}·|expected|`).toBeLessThanOrEqual(0);
  return maxAbs;
}
