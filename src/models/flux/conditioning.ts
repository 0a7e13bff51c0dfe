/**
 * Per-step conditioning inputs computed in TypeScript: the sinusoidal timestep/guidance
 * embedding (docs/flux-math.md §2.1, §6.3) and the RoPE tables (§2.3). Both are cheap and
 * need precision control that graph kernels do not give.
 */
import type { FluxConfig } from './config.js';

/**
 * ω_i = exp(−ln(10000)·i/128) for i = 0..127, exactly as PyTorch's float32 exp evaluates it
 * (a correctly rounded exp differs at 15 indices, moving the embedding of T≈3500 by ~2e-4;
 * test/golden/data/README.md §4.2). Stored as float32 bit patterns.
 */
const TIMESTEP_FREQ_BITS = Uint32Array.of(
  0x3f800000,
  0x3f6e39f8,
  0x3f5dafd6,
  0x3f4e4bac,
  0x3f3ff911,
  0x3f32a506,
  0x3f263de0,
  0x3f1ab32b,
  0x3f0ff59a,
  0x3f05f6ee,
  0x3ef953ce,
  0x3ee80460,
  0x3ed7e89a,
  0x3ec8eb24,
  0x3ebaf81a,
  0x3eadfcff,
  0x3ea1e89b,
  0x3e96aaea,
  0x3e8c3503,
  0x3e827908,
  0x3e72d422,
  0x3e61f836,
  0x3e5247ed,
  0x3e43ae7c,
  0x3e361887,
  0x3e297409,
  0x3e1db040,
  0x3e12bd90,
  0x3e088d77,
  0x3dfe24df,
  0x3dec7fd5,
  0x3ddc1464,
  0x3dcccccc,
  0x3dbe94c8,
  0x3db15978,
  0x3da50957,
  0x3d99940d,
  0x3d8eea6c,
  0x3d84fe4c,
  0x3d778511,
  0x3d6655c1,
  0x3d5657e3,
  0x3d477640,
  0x3d399d18,
  0x3d2cba16,
  0x3d20bc1b,
  0x3d159348,
  0x3d0b30cb,
  0x3d0186e2,
  0x3cf11177,
  0x3ce054d1,
  0x3cd0c1a8,
  0x3cc2434e,
  0x3cb4c692,
  0x3ca83989,
  0x3c9c8b96,
  0x3c91ad3a,
  0x3c879009,
  0x3c7c4d30,
  0x3c6ac8e6,
  0x3c5a7bf1,
  0x3c4b50b5,
  0x3c3d330e,
  0x3c301050,
  0x3c23d70a,
  0x3c187706,
  0x3c0de12e,
  0x3c040777,
  0x3bf5b9ad,
  0x3be4aa45,
  0x3bd4ca16,
  0x3bc6040a,
  0x3bb8449a,
  0x3bab7982,
  0x3b9f91cc,
  0x3b947daf,
  0x3b8a2e75,
  0x3b80967c,
  0x3b6f520d,
  0x3b5eb47a,
  0x3b4f3e33,
  0x3b40dac2,
  0x3b33770d,
  0x3b270153,
  0x3b1b690e,
  0x3b109ed8,
  0x3b06946d,
  0x3afa78f0,
  0x3ae91528,
  0x3ad8e674,
  0x3ac9d759,
  0x3abbd3ea,
  0x3aaec98e,
  0x3aa2a6f7,
  0x3a975c0b,
  0x3a8cd9d9,
  0x3a83126e,
  0x3a73f1a2,
  0x3a6301e3,
  0x3a533f24,
  0x3a44948a,
  0x3a36ee9e,
  0x3a2a3b44,
  0x3a1e69a2,
  0x3a136a14,
  0x3a092e01,
  0x39ff4fac,
  0x39ed95e4,
  0x39dd1722,
  0x39cdbd93,
  0x39bf74d6,
  0x39b229fb,
  0x39a5cb60,
  0x399a48a0,
  0x398f9275,
  0x39859aa4,
  0x3978a80d,
  0x3967648c,
  0x395753e2,
  0x394860c0,
  0x393a7753,
  0x392d852a,
  0x39217919,
  0x39164326,
  0x390bd46d,
  0x39021f28,
  0x38f22cdd,
  0x38e15c8e,
);
export const TIMESTEP_FREQS = new Float32Array(TIMESTEP_FREQ_BITS.buffer);

const f32 = Math.fround;

const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/** Rounds to the nearest bfloat16 (ties to even), returned as a number. */
export function roundBf16(x: number): number {
  scratchFloat[0] = x;
  const b = scratchBits[0] as number;
  if ((b & 0x7f800000) === 0x7f800000) return x;
  scratchBits[0] = (b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000;
  return scratchFloat[0] as number;
}

/**
 * The embedding argument for σ (or a guidance scale g): T = 1000·σ. A reference running
 * bf16 weights computes it as bf16(1000·bf16(σ)) (so g = 3.5 becomes 3504, §6.3);
 * in float32 it is fl32(1000·σ).
 */
export function embeddingArgument(value: number, bf16: boolean): number {
  return bf16 ? roundBf16(1000 * roundBf16(value)) : f32(1000 * f32(value));
}

/**
 * Emb₂₅₆(T) = [cos(T·ω) ; sin(T·ω)] for each batch element, with fl32(T·ω_i) as the
 * argument and cos/sin rounded to float32. With bf16, the vector is rounded to bf16 as
 * the references do before the MLP.
 */
export function timestepEmbedding(args: readonly number[], bf16: boolean): Float32Array {
  const out = new Float32Array(args.length * 256);
  args.forEach((t, b) => {
    for (let i = 0; i < 128; i++) {
      const angle = f32(t * (TIMESTEP_FREQS[i] as number));
      const c = f32(Math.cos(angle));
      const s = f32(Math.sin(angle));
      out[b * 256 + i] = bf16 ? roundBf16(c) : c;
      out[b * 256 + 128 + i] = bf16 ? roundBf16(s) : s;
    }
  });
  return out;
}

/**
 * RoPE tables for positions ids [L, 3] (text ids first, then image ids): cos and sin of
 * angle = id_a·θ^(−2j/d_a) for the 64 interleaved pairs, computed in float64 and rounded
 * to float32 (diffusers, §2.3). Returns [L, headDim/2] tables, one value per pair.
 */
export function ropeTables(config: FluxConfig, ids: Float32Array, length: number): { cos: Float32Array; sin: Float32Array } {
  const half = config.headDim / 2;
  const cos = new Float32Array(length * half);
  const sin = new Float32Array(length * half);
  for (let l = 0; l < length; l++) {
    let pair = 0;
    config.axesDims.forEach((dim, axis) => {
      const position = ids[l * 3 + axis] as number;
      for (let j = 0; j < dim / 2; j++, pair++) {
        const angle = position * (1 / Math.pow(config.theta, (2 * j) / dim));
        cos[l * half + pair] = Math.cos(angle);
        sin[l * half + pair] = Math.sin(angle);
      }
    });
  }
  return { cos, sin };
}
