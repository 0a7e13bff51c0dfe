/**
 * Plain TypeScript reference computations (float64 accumulation) used to check graphs
 * built by the ONNX builder. Row-major layouts throughout.
 */

/** [M, K] × [K, N] → [M, N]. */
export function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (a[i * k + p] as number) * (b[p * n + j] as number);
      out[i * n + j] = s;
    }
  }
  return out;
}

/** x [M, K] · wᵀ with w [N, K] (torch Linear layout). */
export function linear(x: Float32Array, w: Float32Array, m: number, k: number, n: number, bias?: Float32Array): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias?.[j] ?? 0;
      for (let p = 0; p < k; p++) s += (x[i * k + p] as number) * (w[j * k + p] as number);
      out[i * n + j] = s;
    }
  }
  return out;
}

export const map = (x: Float32Array, f: (v: number, i: number) => number): Float32Array => Float32Array.from(x, f);

/** erf with |error| < 1.5e-7 (Abramowitz–Stegun 7.1.26). */
export function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const geluExact = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Applies `f` to each contiguous row of length `width`. */
export function rows(x: Float32Array, width: number, f: (row: Float32Array) => ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / width; r++) out.set(f(x.subarray(r * width, (r + 1) * width)), r * width);
  return out;
}

export function softmaxRow(row: ArrayLike<number>): Float64Array {
  const max = Math.max(...Array.from(row));
  const e = Float64Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((s, v) => s + v, 0);
  return e.map((v) => v / sum);
}

export function layerNormRow(row: ArrayLike<number>, eps: number, scale?: ArrayLike<number>, bias?: ArrayLike<number>): Float64Array {
  const n = row.length;
  const mean = Array.from(row).reduce((s, v) => s + v, 0) / n;
  const variance = Array.from(row).reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  return Float64Array.from(row, (v, i) => ((v - mean) / Math.sqrt(variance + eps)) * (scale?.[i] ?? 1) + (bias?.[i] ?? 0));
}

export function rmsNormRow(row: ArrayLike<number>, eps: number, scale: ArrayLike<number>): Float64Array {
  const ms = Array.from(row).reduce((s, v) => s + v * v, 0) / row.length;
  return Float64Array.from(row, (v, i) => (v / Math.sqrt(ms + eps)) * (scale[i] as number));
}

/**
 * Attention per head: q [B, S, H·D], k/v [B, L, H·D] → [B, S, H·D];
 * optional additive bias [B, H, S, L] and causal masking.
 */
export function attention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dims: { batch: number; s: number; l: number; heads: number; headDim: number },
  options: { bias?: Float32Array; causal?: boolean } = {},
): Float32Array {
  const { batch, s, l, heads, headDim } = dims;
  const width = heads * headDim;
  const out = new Float32Array(batch * s * width);
  const scale = 1 / Math.sqrt(headDim);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < s; i++) {
        const scores = new Float64Array(l);
        for (let j = 0; j < l; j++) {
          let dot = 0;
          for (let d = 0; d < headDim; d++) {
            dot += (q[(b * s + i) * width + h * headDim + d] as number) * (k[(b * l + j) * width + h * headDim + d] as number);
          }
          scores[j] = dot * scale + (options.bias?.[((b * heads + h) * s + i) * l + j] ?? 0);
          if (options.causal && j > i) scores[j] = -Infinity;
        }
        const p = softmaxRow(scores);
        for (let d = 0; d < headDim; d++) {
          let acc = 0;
          for (let j = 0; j < l; j++) acc += (p[j] as number) * (v[(b * l + j) * width + h * headDim + d] as number);
          out[(b * s + i) * width + h * headDim + d] = acc;
        }
      }
    }
  }
  return out;
}

/** 2-D convolution, NCHW input, weight [M, C, kh, kw], symmetric padding, stride 1. */
export function conv2d(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array,
  dims: { n: number; c: number; h: number; w: number; m: number; kernel: number; pad: number },
): Float32Array {
  const { n, c, h, m, kernel, pad } = dims;
  const width = dims.w;
  const oh = h + 2 * pad - kernel + 1;
  const ow = width + 2 * pad - kernel + 1;
  const out = new Float32Array(n * m * oh * ow);
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < m; o++) {
      for (let y = 0; y < oh; y++) {
        for (let xx = 0; xx < ow; xx++) {
          let s = bias[o] as number;
          for (let ci = 0; ci < c; ci++) {
            for (let ky = 0; ky < kernel; ky++) {
              for (let kx = 0; kx < kernel; kx++) {
                const iy = y + ky - pad;
                const ix = xx + kx - pad;
                if (iy < 0 || ix < 0 || iy >= h || ix >= width) continue;
                s += (x[((b * c + ci) * h + iy) * width + ix] as number) * (w[((o * c + ci) * kernel + ky) * kernel + kx] as number);
              }
            }
          }
          out[((b * m + o) * oh + y) * ow + xx] = s;
        }
      }
    }
  }
  return out;
}

/** GroupNorm on NCHW with per-channel affine. */
export function groupNorm(
  x: Float32Array,
  dims: { n: number; c: number; hw: number; groups: number },
  scale: Float32Array,
  bias: Float32Array,
  eps: number,
): Float32Array {
  const { n, c, hw, groups } = dims;
  const per = (c / groups) * hw;
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let gi = 0; gi < groups; gi++) {
      const start = (b * c + gi * (c / groups)) * hw;
      const normalized = layerNormRow(x.subarray(start, start + per), eps);
      for (let i = 0; i < per; i++) {
        const ch = gi * (c / groups) + Math.floor(i / hw);
        out[start + i] = (normalized[i] as number) * (scale[ch] as number) + (bias[ch] as number);
      }
    }
  }
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}
