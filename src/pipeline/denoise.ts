/**
 * The rectified-flow Euler loop (docs/flux-math.md §4.6) with img2img start and inpainting
 * blends (§4.8–4.9): x ← x + (σᵢ₊₁ − σᵢ)·v, one transformer evaluation per step, with
 * progress callbacks and cancellation between steps.
 */
import { RunCancelledError } from '../onnx/errors.js';

const f32 = Math.fround;

export interface StepInfo {
  /** 1-based step number and the number of steps this run takes. */
  step: number;
  total: number;
  sigma: number;
  elapsedMs: number;
  /** The packed latents after this step (for previews and step-by-step checks; do not modify). */
  latents: Float32Array;
}

export interface Inpainting {
  /** Packed mask, 1 = repaint, 0 = keep. */
  mask: Float32Array;
  /** Packed normalized latents of the input image. */
  imageLatents: Float32Array;
  /** The packed initial noise (re-noises the kept region to each step's σ). */
  noise: Float32Array;
}

export interface DenoiseOptions {
  sigmas: Float32Array;
  /** First step (img2img / inpaint t_start); 0 for txt2img. */
  startIndex?: number;
  /** The velocity for latents x at noise level σ. */
  velocity(x: Float32Array, sigma: number, signal?: AbortSignal): Promise<Float32Array>;
  inpainting?: Inpainting;
  onStep?(info: StepInfo): void;
  signal?: AbortSignal;
}

/** img2img / inpaint start latents: σ·noise + (1 − σ)·x₀ (float32). */
export function noisedLatents(imageLatents: Float32Array, noise: Float32Array, sigma: number): Float32Array {
  return imageLatents.map((x0, i) => f32(f32(sigma * (noise[i] as number)) + f32(f32(1 - sigma) * x0)));
}

/** Runs steps startIndex..S−1 from `initial` and returns the final packed latents. */
export async function denoise(initial: Float32Array, options: DenoiseOptions): Promise<Float32Array> {
  const { sigmas } = options;
  const start = options.startIndex ?? 0;
  const steps = sigmas.length - 1;
  if (start < 0 || start >= steps) throw new RangeError(`start index ${start} leaves no step of ${steps} to run`);
  const began = performance.now();
  let x = Float32Array.from(initial);
  for (let i = start; i < steps; i++) {
    if (options.signal?.aborted) throw new RunCancelledError(`denoising (after ${i - start} of ${steps - start} steps)`);
    const sigma = sigmas[i] as number;
    const next = sigmas[i + 1] as number;
    const v = await options.velocity(x, sigma, options.signal);
    const dt = f32(next - sigma);
    x = x.map((xi, k) => f32(xi + f32(dt * (v[k] as number))));
    const inpaint = options.inpainting;
    if (inpaint !== undefined) {
      // Keep region: the input image re-noised to the next σ (the clean latents after the last step).
      const known = i + 1 < steps ? noisedLatents(inpaint.imageLatents, inpaint.noise, next) : inpaint.imageLatents;
      x = x.map((xi, k) => {
        const m = inpaint.mask[k] as number;
        return f32(f32((1 - m) * (known[k] as number)) + f32(m * xi));
      });
    }
    options.onStep?.({ step: i - start + 1, total: steps - start, sigma, elapsedMs: performance.now() - began, latents: x });
  }
  return x;
}
