import { describe, expect, it } from 'vitest';
import { cropImage, extendImage, extendMask, workingGrid } from '../../../src/pipeline/grid.js';
import { float32Tensor } from '../../../src/onnx/tensor-data.js';

describe('the working grid', () => {
  it('covers the size with whole cells and is the size itself when it fits', () => {
    expect(workingGrid(112, 64, 32)).toEqual({ width: 128, height: 64 });
    expect(workingGrid(608, 416, 32)).toEqual({ width: 608, height: 416 });
    expect(workingGrid(272, 256, 16)).toEqual({ width: 272, height: 256 });
  });

  it('extends images by their edges and crops them back to the same pixels', () => {
    const image = float32Tensor([1, 2, 2, 3], [1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60]);
    const extended = extendImage(image, { width: 4, height: 3 });
    expect(extended.dims).toEqual([1, 2, 3, 4]);
    expect([...(extended.data as Float32Array)]).toEqual([1, 2, 3, 3, 4, 5, 6, 6, 4, 5, 6, 6, 10, 20, 30, 30, 40, 50, 60, 60, 40, 50, 60, 60]);
    expect(cropImage(extended, 3, 2)).toEqual(image);
    expect(extendImage(image, { width: 3, height: 2 })).toBe(image);
  });

  it('extends masks by their edges too, so a mask that repaints everything still does', () => {
    expect([...extendMask(Uint8Array.from([1, 0, 1, 1]), 2, 2, { width: 3, height: 3 })]).toEqual([1, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect([...extendMask(new Uint8Array(4).fill(1), 2, 2, { width: 4, height: 3 })]).toEqual(new Array(12).fill(1));
  });
});
