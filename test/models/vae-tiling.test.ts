import { describe, expect, it } from 'vitest';
import { planTiles, TileBlender } from '../../src/models/vae/tiling.js';

describe('tile planning and blending', () => {
  it('covers the latent with overlapping tiles', () => {
    const tiles = planTiles(40, 100, 32, 8);
    expect(new Set(tiles.map((t) => t.y))).toEqual(new Set([0, 8]));
    const xs = [...new Set(tiles.map((t) => t.x))];
    expect(xs[0]).toBe(0);
    expect((xs[xs.length - 1] as number) + 32).toBe(100);
    for (let i = 1; i < xs.length; i++) expect((xs[i - 1] as number) + 32 - (xs[i] as number)).toBeGreaterThanOrEqual(8);
    expect(planTiles(10, 10, 32, 8)).toEqual([{ y: 0, x: 0, h: 10, w: 10 }]);
    expect(() => planTiles(10, 10, 8, 8)).toThrow(/overlap/);
  });

  it('reproduces a constant image exactly and blends two tiles without a step', () => {
    const blender = new TileBlender(1, 1, 4, 10, 2);
    blender.add(new Float32Array(24).fill(1), 0, 0, 4, 6);
    blender.add(new Float32Array(24).fill(3), 0, 4, 4, 6);
    const row = Array.from(blender.result().subarray(0, 10));
    expect(row.slice(0, 4)).toEqual([1, 1, 1, 1]);
    expect(row.slice(6)).toEqual([3, 3, 3, 3]);
    expect(row[4]).toBeGreaterThan(1);
    expect(row[5]).toBeGreaterThan(row[4] as number);
    expect(row[5]).toBeLessThan(3);
  });
});
