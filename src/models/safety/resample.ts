/**
 * Pillow's `Image.resize` for 8-bit RGB with BICUBIC or BILINEAR, bit for bit
 * (test/golden/data/safety/README.md §5 "PIL resampling"): separable, horizontal pass first (only when
 * the width changes), its output clamped to uint8 before the vertical pass; the filter
 * support widens by the scale when downscaling (antialias); weights in 22-bit fixed point.
 */
import type { RgbImage } from '../../images/decode.js';

export type Resample = 'bicubic' | 'bilinear';

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);

const FILTERS: Record<Resample, { support: number; weight(x: number): number }> = {
  // Keys' cubic with a = −0.5, as Pillow's bicubic_filter.
  bicubic: {
    support: 2,
    weight(x) {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  bilinear: { support: 1, weight: (x) => Math.max(0, 1 - Math.abs(x)) },
};

/** For each output index: the first input index and the fixed-point weights of its window. */
interface Coefficients {
  start: Int32Array;
  weights: Int32Array[];
}

function coefficients(inSize: number, outSize: number, resample: Resample): Coefficients {
  const filter = FILTERS[resample];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const start = new Int32Array(outSize);
  const weights: Int32Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    const w = Array.from({ length: hi - lo }, (_, t) => filter.weight((t + lo - center + 0.5) * (1 / filterScale)));
    const sum = w.reduce((s, v) => s + v, 0);
    start[o] = lo;
    weights.push(
      Int32Array.from(w, (v) => {
        const normalized = sum === 0 ? v : v / sum;
        return Math.trunc(normalized * (1 << PRECISION_BITS) + (normalized < 0 ? -0.5 : 0.5));
      }),
    );
  }
  return { start, weights };
}

/** Σ in[lo + t]·k_t in fixed point, rounded and clamped to uint8 (integer arithmetic, < 2³¹). */
function fixedPoint(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function resizeHorizontal(src: Uint8Array, rows: number, inWidth: number, outWidth: number, resample: Resample): Uint8Array {
  const { start, weights } = coefficients(inWidth, outWidth, resample);
  const out = new Uint8Array(rows * outWidth * 3);
  for (let y = 0; y < rows; y++) {
    const row = y * inWidth * 3;
    for (let x = 0; x < outWidth; x++) {
      const k = weights[x] as Int32Array;
      let p = row + (start[x] as number) * 3;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let t = 0; t < k.length; t++, p += 3) {
        const w = k[t] as number;
        r += (src[p] as number) * w;
        g += (src[p + 1] as number) * w;
        b += (src[p + 2] as number) * w;
      }
      const o = (y * outWidth + x) * 3;
      out[o] = fixedPoint(r);
      out[o + 1] = fixedPoint(g);
      out[o + 2] = fixedPoint(b);
    }
  }
  return out;
}

function resizeVertical(src: Uint8Array, width: number, inHeight: number, outHeight: number, resample: Resample): Uint8Array {
  const { start, weights } = coefficients(inHeight, outHeight, resample);
  const stride = width * 3;
  const out = new Uint8Array(outHeight * stride);
  const acc = new Float64Array(stride);
  for (let y = 0; y < outHeight; y++) {
    const k = weights[y] as Int32Array;
    acc.fill(HALF);
    for (let t = 0; t < k.length; t++) {
      const w = k[t] as number;
      const row = ((start[y] as number) + t) * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i] as number) + (src[row + i] as number) * w;
    }
    for (let i = 0; i < stride; i++) out[y * stride + i] = fixedPoint(acc[i] as number);
  }
  return out;
}

/** The image resized to width × height exactly as Pillow does it; an unchanged size is a copy. */
export function resizeRgb(image: RgbImage, width: number, height: number, resample: Resample): RgbImage {
  let data = image.data;
  if (width !== image.width) data = resizeHorizontal(data, image.height, image.width, width, resample);
  if (height !== image.height) data = resizeVertical(data, width, image.height, height, resample);
  return { width, height, data: data === image.data ? data.slice() : data };
}
