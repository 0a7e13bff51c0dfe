/**
 * Flow-matching Euler schedule (docs/flux-math.md §4.5), computed exactly as the reference
 * (diffusers FlowMatchEulerDiscreteScheduler via FluxPipeline) does, to the float32 bit:
 * σ⁰ = float32(linspace(1, 1/S, S)) with a final 0; dev shifts by μ = m·N + b (float64,
 * unclamped): σ = e^μ / (e^μ + (1/σ⁰ − 1)) in float32; schnell does not shift.
 */

export type ScheduleVariant = 'dev' | 'schnell';

const f32 = Math.fround;
const BASE_SEQ_LEN = 256;
const MAX_SEQ_LEN = 4096;
const BASE_SHIFT = 0.5;
const MAX_SHIFT = 1.15;

/** μ for `imageSeqLen` packed image tokens, linear in the token count and not clamped. */
export function scheduleShift(imageSeqLen: number): number {
  const m = (MAX_SHIFT - BASE_SHIFT) / (MAX_SEQ_LEN - BASE_SEQ_LEN);
  const b = BASE_SHIFT - m * BASE_SEQ_LEN;
  return imageSeqLen * m + b;
}

/** S + 1 sigmas, from 1 down to the final 0. */
export function sigmas(steps: number, imageSeqLen: number, variant: ScheduleVariant): Float32Array {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
  const out = new Float32Array(steps + 1);
  for (let i = 0; i < steps; i++) out[i] = steps === 1 ? 1 : 1 + (i * (1 / steps - 1)) / (steps - 1);
  if (variant === 'dev') {
    const e = f32(Math.exp(scheduleShift(imageSeqLen)));
    for (let i = 0; i < steps; i++) {
      const s = out[i] as number;
      out[i] = f32(e / f32(e + f32(f32(1 / s) - 1)));
    }
  }
  out[steps] = 0;
  return out;
}

/** timesteps[i] = float32(σᵢ·1000), what the pipeline reports; the model receives σᵢ. */
export function timesteps(schedule: Float32Array): Float32Array {
  return schedule.subarray(0, schedule.length - 1).map((s) => f32(s * 1000));
}

/**
 * img2img start index for prompt_strength (diffusers get_timesteps, float64):
 * t_start = trunc(max(S − min(S·strength, S), 0)); steps run = S − t_start.
 */
export function img2imgStart(steps: number, strength: number): number {
  return Math.trunc(Math.max(steps - Math.min(steps * strength, steps), 0));
}
