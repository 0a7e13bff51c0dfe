/** txt2img output sizes (docs/reference-behaviour.md §2.4, docs/decisions.md). */
import type { AspectRatio } from './schema.js';

/** width × height for megapixels "1"; "0.25" halves each side. */
const PRESETS: Record<Exclude<AspectRatio, 'custom'>, [number, number]> = {
  '1:1': [1024, 1024],
  '16:9': [1344, 768],
  '21:9': [1536, 640],
  '3:2': [1216, 832],
  '2:3': [832, 1216],
  '4:5': [896, 1088],
  '5:4': [1088, 896],
  '3:4': [896, 1152],
  '4:3': [1152, 896],
  '9:16': [768, 1344],
  '9:21': [640, 1536],
};

/** Nearest multiple of 16 (ties round up), clamped to 256..1440, as the schema text says. */
export function roundSide(value: number): number {
  return Math.min(1440, Math.max(256, Math.floor((value + 8) / 16) * 16));
}

export function txt2imgSize(aspectRatio: AspectRatio, megapixels: '1' | '0.25', width?: number, height?: number): { width: number; height: number } {
  if (aspectRatio === 'custom') {
    if (width === undefined || height === undefined) throw new RangeError('custom aspect ratio needs width and height');
    return { width: roundSide(width), height: roundSide(height) };
  }
  const [w, h] = PRESETS[aspectRatio];
  return megapixels === '0.25' ? { width: Math.floor(w / 2), height: Math.floor(h / 2) } : { width: w, height: h };
}
