/** Generation sizes derived from an input image (docs/reference-behaviour.md §4.2). */

const roundUp16 = (v: number) => Math.ceil(v / 16) * 16;

/**
 * img2img / inpaint: cap the longest side at 1440 keeping the aspect ratio (truncating,
 * in double precision exactly as the reference evaluates it), then round each side up to a
 * multiple of 16. No minimum size.
 */
export function sizeForInputImage(width: number, height: number): { width: number; height: number } {
  const scale = Math.min(1440 / width, 1440 / height, 1);
  const w = scale < 1 ? Math.trunc(width * scale) : width;
  const h = scale < 1 ? Math.trunc(height * scale) : height;
  return { width: roundUp16(w), height: roundUp16(h) };
}
