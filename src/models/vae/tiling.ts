/**
 * Tiled decoding for large images: the latent is cut into overlapping tiles, each tile is
 * decoded on its own (so peak memory follows the tile, not the image), and the decoded
 * tiles are blended with linear ramps across the overlaps so no seam shows.
 */

export interface Tile {
  /** Position and size in latent cells. */
  y: number;
  x: number;
  h: number;
  w: number;
}

/**
 * Even tiling of one axis: the fewest tiles no longer than `maxSize` that overlap by
 * `overlap`, all of one size. Returns the tile size and start offsets.
 */
function axisTiles(length: number, maxSize: number, overlap: number): { size: number; starts: number[] } {
  if (length <= maxSize) return { size: length, starts: [0] };
  const count = Math.ceil((length - overlap) / (maxSize - overlap));
  const size = Math.ceil((length + (count - 1) * overlap) / count);
  const starts = Array.from({ length: count }, (_, i) => Math.min(i * (size - overlap), length - size));
  return { size, starts };
}

export function planTiles(height: number, width: number, maxSize: number, overlap: number): Tile[] {
  if (!(overlap >= 0 && overlap < maxSize)) throw new RangeError(`tile overlap ${overlap} must be in [0, ${maxSize})`);
  const rows = axisTiles(height, maxSize, overlap);
  const cols = axisTiles(width, maxSize, overlap);
  return rows.starts.flatMap((y) => cols.starts.map((x) => ({ y, x, h: rows.size, w: cols.size })));
}

/**
 * Weight of a pixel at offset `i` of a tile span [start, start+len) inside [0, total):
 * ramps up over `ramp` pixels from an inner edge, 1 elsewhere (image borders get full weight).
 */
function edgeWeight(i: number, len: number, start: number, total: number, ramp: number): number {
  let w = 1;
  if (start > 0) w = Math.min(w, (i + 0.5) / ramp);
  if (start + len < total) w = Math.min(w, (len - i - 0.5) / ramp);
  return Math.max(0, Math.min(1, w));
}

/** Accumulates decoded tiles [B, C, th, tw] into an image [B, C, H, W] with blending weights. */
export class TileBlender {
  private readonly sum: Float32Array;
  private readonly weight: Float32Array;

  constructor(
    private readonly batch: number,
    private readonly channels: number,
    private readonly height: number,
    private readonly width: number,
    private readonly ramp: number,
  ) {
    this.sum = new Float32Array(batch * channels * height * width);
    this.weight = new Float32Array(height * width);
  }

  add(tile: Float32Array, top: number, left: number, th: number, tw: number): void {
    const { height: H, width: W } = this;
    for (let y = 0; y < th; y++) {
      const wy = edgeWeight(y, th, top, H, this.ramp);
      for (let x = 0; x < tw; x++) {
        const w = wy * edgeWeight(x, tw, left, W, this.ramp);
        const p = (top + y) * W + left + x;
        this.weight[p] = (this.weight[p] as number) + w;
        for (let bc = 0; bc < this.batch * this.channels; bc++) {
          const i = bc * H * W + p;
          this.sum[i] = (this.sum[i] as number) + w * (tile[(bc * th + y) * tw + x] as number);
        }
      }
    }
  }

  result(): Float32Array {
    const plane = this.height * this.width;
    for (let i = 0; i < this.sum.length; i++) this.sum[i] = (this.sum[i] as number) / (this.weight[i % plane] as number);
    return this.sum;
  }
}
