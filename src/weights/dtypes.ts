/** safetensors dtypes and exact conversions of the float formats to float32. */

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2' | 'U8' | 'I8' | 'I16' | 'I32' | 'I64' | 'BOOL';

export const DTYPE_BYTES: Record<SafetensorsDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  I32: 4,
  I64: 8,
  BOOL: 1,
};

export function isSafetensorsDType(s: string): s is SafetensorsDType {
  return Object.hasOwn(DTYPE_BYTES, s);
}

/** bf16 is the top half of a float32: widening is a 16-bit shift. */
export function bf16ToF32(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = (src[i] as number) << 16;
  return dst;
}

/** Decodes a small float with the given exponent/mantissa widths (IEEE-style, with subnormals). */
function decodeMinifloat(bits: number, exponentBits: number, mantissaBits: number, finiteOnlyNaN: boolean): number {
  const sign = bits >> (exponentBits + mantissaBits) ? -1 : 1;
  const exponent = (bits >> mantissaBits) & ((1 << exponentBits) - 1);
  const mantissa = bits & ((1 << mantissaBits) - 1);
  const bias = (1 << (exponentBits - 1)) - 1;
  const maxExponent = (1 << exponentBits) - 1;
  if (finiteOnlyNaN) {
    if (exponent === maxExponent && mantissa === (1 << mantissaBits) - 1) return NaN;
  } else if (exponent === maxExponent) {
    return mantissa === 0 ? sign * Infinity : NaN;
  }
  if (exponent === 0) return sign * mantissa * 2 ** (1 - bias - mantissaBits);
  return sign * (1 + mantissa / (1 << mantissaBits)) * 2 ** (exponent - bias);
}

let f16Table: Float32Array | null = null;
const f8e4m3Table = Float32Array.from({ length: 256 }, (_, b) => decodeMinifloat(b, 4, 3, true));
const f8e5m2Table = Float32Array.from({ length: 256 }, (_, b) => decodeMinifloat(b, 5, 2, false));

export function f16ToF32(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  const table = (f16Table ??= Float32Array.from({ length: 65536 }, (_, b) => decodeMinifloat(b, 5, 10, false)));
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i] as number] as number;
  return dst;
}

/** float8 E4M3FN: bias 7, no infinities, S.1111.111 is NaN. */
export function f8e4m3fnToF32(src: Uint8Array, dst = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) dst[i] = f8e4m3Table[src[i] as number] as number;
  return dst;
}

/** float8 E5M2: bias 15, IEEE infinities and NaNs. */
export function f8e5m2ToF32(src: Uint8Array, dst = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) dst[i] = f8e5m2Table[src[i] as number] as number;
  return dst;
}

/** float32 → bf16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i] as number;
    if ((b & 0x7fffffff) > 0x7f800000) {
      out[i] = (b >>> 16) | 0x40;
      continue;
    }
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** float32 → float16 bits, round to nearest even, overflow to ±inf, subnormals kept. */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i] as number;
    const sign = (b >>> 16) & 0x8000;
    const exponent = (b >>> 23) & 0xff;
    const mantissa = b & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      // Subnormal: shift the full significand, rounding to nearest even.
      const significand = mantissa | 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rest = significand & ((1 << shift) - 1);
      let value = significand >>> shift;
      if (rest > half || (rest === half && (value & 1) === 1)) value++;
      out[i] = sign | value;
      continue;
    }
    let value = (e << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (value & 1) === 1)) value++;
    out[i] = sign | value;
  }
  return out;
}
