import { describe, expect, it } from 'vitest';
import { planTiles, TileBlender } from '../../../src/models/vae/tiling.js';

describe('tile planning and blending', () => {
  it('covers the latent with the fewest even tiles overlapping by at least the overlap', () => {
    const tiles = planTiles(40, 100, 32, 8);
    const ys = [...new Set(tiles.map((t) => t.y))];
    const xs = [...new Set(tiles.map((t) => t.x))];
    const [h, w] = [tiles[0]?.h as number, tiles[0]?.w as number];
    expect([ys.length, xs.length, h, w]).toEqual([2, 4, 24, 31]);
    expect([ys[0], (ys[ys.length - 1] as number) + h, xs[0], (xs[xs.length - 1] as number) + w]).toEqual([0, 40, 0, 100]);
    for (let i = 1; i < xs.length; i++) expect((xs[i - 1] as number) + w - (xs[i] as number)).toBeGreaterThanOrEqual(8);
    expect(planTiles(180, 180, 128, 16)).toHaveLength(4);
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
