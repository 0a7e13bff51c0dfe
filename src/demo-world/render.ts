/** Draws a demo-world scene: flat shapes on a plain background, anti-aliased by 4×4 supersampling where a pixel's corners disagree. */
import type { Scene } from './scene.js';
import { BACKGROUNDS, OBJECT_COLOURS, TOK, TOK_COLOUR, type Rgb, type Shape } from './vocabulary.js';

/** An RGB image, row-major, 3 bytes per pixel. */
export interface RgbPixels {
  width: number;
  height: number;
  data: Uint8Array;
}

const STAR: [number, number][] = Array.from({ length: 10 }, (_, i) => {
  const r = i % 2 === 0 ? 1 : 0.42;
  const a = (i * Math.PI) / 5;
  return [r * Math.sin(a), -r * Math.cos(a)];
});

function insidePolygon(u: number, v: number, polygon: [number, number][]): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [ui, vi] = polygon[i] as [number, number];
    const [uj, vj] = polygon[j] as [number, number];
    if (vi > v !== vj > v && u < ((uj - ui) * (v - vi)) / (vj - vi) + ui) inside = !inside;
  }
  return inside;
}

/** Whether (u, v), in units of the object's radius from its centre (v down), is inside the shape. */
export function insideShape(shape: Shape | typeof TOK, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return Math.abs(u) <= 0.85 && Math.abs(v) <= 0.85;
    case 'triangle':
      return v >= -1 && v <= 0.8 && Math.abs(u) <= (0.95 * (v + 1)) / 1.8;
    case 'star':
      return insidePolygon(u, v, STAR);
    case 'ring': {
      const r2 = u * u + v * v;
      return r2 <= 1 && r2 >= 0.55 * 0.55;
    }
    case TOK:
      return (Math.abs(u) <= 0.3 && Math.abs(v) <= 0.9) || (Math.abs(v) <= 0.3 && Math.abs(u) <= 0.9);
  }
}

const SUB = 4;

export function renderScene(scene: Scene, width: number, height: number): RgbPixels {
  const data = new Uint8Array(width * height * 3);
  const background = BACKGROUNDS[scene.background];
  for (let i = 0; i < width * height; i++) data.set(background, i * 3);
  const unit = Math.min(width, height);
  for (const object of scene.objects) {
    const colour: Rgb = object.shape === TOK ? TOK_COLOUR : OBJECT_COLOURS[object.colour ?? 'red'];
    const [cx, cy, r] = [object.x * width, object.y * height, object.radius * unit];
    const x0 = Math.max(0, Math.floor(cx - r - 1));
    const x1 = Math.min(width, Math.ceil(cx + r + 1));
    const y0 = Math.max(0, Math.floor(cy - r - 1));
    const y1 = Math.min(height, Math.ceil(cy + r + 1));
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const inside = (fx: number, fy: number) => insideShape(object.shape, (x + fx - cx) / r, (y + fy - cy) / r);
        const corners = [inside(0, 0), inside(1, 0), inside(0, 1), inside(1, 1), inside(0.5, 0.5)];
        let hits = corners.every(Boolean) ? SUB * SUB : 0;
        if (corners.some(Boolean) && hits === 0) {
          for (let sy = 0; sy < SUB; sy++) for (let sx = 0; sx < SUB; sx++) if (inside((sx + 0.5) / SUB, (sy + 0.5) / SUB)) hits++;
        }
        if (hits === 0) continue;
        const a = hits / (SUB * SUB);
        const o = (y * width + x) * 3;
        for (let c = 0; c < 3; c++) data[o + c] = Math.round((1 - a) * (data[o + c] as number) + a * (colour[c] as number));
      }
    }
  }
  return { width, height, data };
}
