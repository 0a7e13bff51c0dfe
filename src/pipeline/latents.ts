/** Latent packing and position ids (docs/flux-math.md §4.4) and the posterior sample (§2.11). */

/** [B, C, h, w] → [B, (h/2)·(w/2), 4C]: token (i, j) holds the 2×2 patch, channel c·4 + 2·di + dj. */
export function pack(latent: Float32Array, batch: number, channels: number, h: number, w: number): Float32Array {
  const out = new Float32Array(latent.length);
  const [h2, w2] = [h / 2, w / 2];
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const token = (y >> 1) * w2 + (x >> 1);
          const channel = c * 4 + (y & 1) * 2 + (x & 1);
          out[(b * h2 * w2 + token) * channels * 4 + channel] = latent[((b * channels + c) * h + y) * w + x] as number;
        }
      }
    }
  }
  return out;
}

/** The inverse of pack. */
export function unpack(packed: Float32Array, batch: number, channels: number, h: number, w: number): Float32Array {
  const out = new Float32Array(packed.length);
  const w2 = w / 2;
  const tokens = (h / 2) * w2;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const token = (y >> 1) * w2 + (x >> 1);
          out[((b * channels + c) * h + y) * w + x] = packed[(b * tokens + token) * channels * 4 + c * 4 + (y & 1) * 2 + (x & 1)] as number;
        }
      }
    }
  }
  return out;
}

/** Image token ids (0, i, j) for the packed (h/2)×(w/2) grid, [N, 3]. */
export function imageIds(h: number, w: number): Float32Array {
  const [h2, w2] = [h / 2, w / 2];
  const ids = new Float32Array(h2 * w2 * 3);
  for (let i = 0; i < h2; i++) for (let j = 0; j < w2; j++) ids.set([0, i, j], (i * w2 + j) * 3);
  return ids;
}

/**
 * Normalized image latent from the posterior: ((mean + exp(½·clamp(logvar, −30, 20))·ε) − shift)·scale.
 * ε = 0 gives the posterior mean (BFL); diffusers samples ε from its generator.
 */
export function posteriorLatent(mean: Float32Array, logvar: Float32Array, epsilon: Float32Array | null, shift: number, scale: number): Float32Array {
  const f = Math.fround;
  return mean.map((m, i) => {
    const std = f(Math.exp(f(0.5 * Math.min(20, Math.max(-30, logvar[i] as number)))));
    const sample = epsilon === null ? m : f(m + f(std * (epsilon[i] as number)));
    return f(f(sample - shift) * scale);
  });
}

/**
 * The latent-resolution mask: cell (i, j) takes the binarized pixel (f·i, f·j), the top-left
 * of its f×f block (torch nearest interpolation), repeated over `channels` and packed.
 */
export function packedMask(pixels: Uint8Array, width: number, height: number, factor: number, channels: number): Float32Array {
  const [h, w] = [height / factor, width / factor];
  const latent = new Float32Array(channels * h * w);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) latent[(c * h + i) * w + j] = pixels[i * factor * width + j * factor] as number;
  }
  return pack(latent, 1, channels, h, w);
}
