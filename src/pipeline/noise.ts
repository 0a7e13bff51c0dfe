/**
 * Seeded Gaussian noise that reproduces PyTorch's CPU `randn` (docs/flux-math.md §4.3), so a seed
 * gives the same starting latents as the references: MT19937, one 32-bit draw per uniform,
 * Box–Muller over blocks of 16 (first 8 uniforms give u1, next 8 give u2). The FLUX references
 * sample in bf16, whose uniforms have 8 bits. PyTorch evaluated that bf16 path with every
 * intermediate rounded to bf16 ('bf16-rounded', variant A) and later in float32 with one final
 * rounding ('bf16-fp32', variant B); 'fp32' is the float32 path. JavaScript's Math functions are
 * V8's own portable implementations, so the numbers are the same on every platform.
 */
import { roundBf16 } from '../models/flux/conditioning.js';

export type NoiseVariant = 'bf16-rounded' | 'bf16-fp32' | 'fp32';

class Mt19937 {
  private readonly state = new Uint32Array(624);
  private index = 624;

  constructor(seed: number) {
    this.state[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = this.state[i - 1] as number;
      const x = prev ^ (prev >>> 30);
      // 1812433253·x + i (mod 2³²), split to stay exact in doubles.
      this.state[i] = ((((x & 0xffff0000) >>> 16) * 1812433253) << 16) + (x & 0x0000ffff) * 1812433253 + i;
    }
  }

  next(): number {
    if (this.index >= 624) this.twist();
    let y = this.state[this.index++] as number;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < 624; i++) {
      const y = ((s[i] as number) & 0x80000000) | ((s[(i + 1) % 624] as number) & 0x7fffffff);
      s[i] = (s[(i + 397) % 624] as number) ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }
}

const f32 = Math.fround;

/** `count` (a multiple of 16) normal samples from `seed`, as torch.randn on the CPU. */
export function randn(seed: number, count: number, variant: NoiseVariant = 'bf16-rounded'): Float32Array {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in 0..2^32-1, got ${seed}`);
  if (count % 16 !== 0) throw new RangeError(`noise length must be a multiple of 16, got ${count}`);
  const mt = new Mt19937(seed);
  const uniforms = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const r = mt.next();
    uniforms[i] = variant === 'fp32' ? (r & 0xffffff) / 2 ** 24 : (r & 0xff) / 256;
  }
  const out = new Float32Array(count);
  const bf = roundBf16;
  for (let block = 0; block < count; block += 16) {
    for (let j = 0; j < 8; j++) {
      const u1 = 1 - (uniforms[block + j] as number);
      const u2 = uniforms[block + 8 + j] as number;
      if (variant === 'bf16-rounded') {
        const radius = bf(Math.sqrt(bf(-2 * bf(Math.log(bf(u1))))));
        const theta = bf(2 * Math.PI * u2);
        out[block + j] = bf(radius * bf(f32(Math.cos(theta))));
        out[block + 8 + j] = bf(radius * bf(f32(Math.sin(theta))));
      } else {
        const radius = f32(Math.sqrt(f32(-2 * f32(Math.log(f32(u1))))));
        const theta = f32(f32(2 * Math.PI) * u2);
        const round = variant === 'fp32' ? f32 : bf;
        out[block + j] = round(f32(radius * f32(Math.cos(theta))));
        out[block + 8 + j] = round(f32(radius * f32(Math.sin(theta))));
      }
    }
  }
  return out;
}
