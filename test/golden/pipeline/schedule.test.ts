import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { img2imgStart, scheduleShift, sigmas, timesteps } from '../../../src/pipeline/schedule.js';
import { goldenPath } from '../../helpers/golden.js';

interface GoldenSchedule {
  variant: 'dev' | 'schnell';
  steps: number;
  image_seq_len: number;
  mu?: number;
  sigmas_f32_hex: string[];
  timesteps_f32_hex: string[];
}

const golden = JSON.parse(readFileSync(goldenPath('scheduler.json'), 'utf8')) as {
  schedules: GoldenSchedule[];
  img2img_start: { steps: number; strength: number; t_start: number; sigma_start: number; image_seq_len: number }[];
};
const hex = (values: Float32Array) => Array.from(new Uint32Array(Float32Array.from(values).buffer), (b) => b.toString(16).padStart(8, '0'));

describe('flow-matching schedule', () => {
  it.each(golden.schedules.map((s) => [`${s.variant} S=${s.steps} N=${s.image_seq_len}`, s] as const))('%s is bit-exact', (_, s) => {
    const schedule = sigmas(s.steps, s.image_seq_len, s.variant);
    expect(hex(schedule)).toEqual(s.sigmas_f32_hex);
    expect(hex(timesteps(schedule))).toEqual(s.timesteps_f32_hex);
    if (s.variant === 'dev' && s.mu !== undefined) expect(scheduleShift(s.image_seq_len)).toBeCloseTo(s.mu, 12);
  });

  it.each(golden.img2img_start.map((c) => [`S=${c.steps} strength ${c.strength}`, c] as const))('img2img start %s', (_, c) => {
    const start = img2imgStart(c.steps, c.strength);
    expect(start).toBe(c.t_start);
    expect(sigmas(c.steps, c.image_seq_len, 'dev')[start]).toBe(Math.fround(c.sigma_start));
  });

  it('rejects a bad step count', () => {
    expect(() => sigmas(0, 256, 'dev')).toThrow(RangeError);
  });
});
