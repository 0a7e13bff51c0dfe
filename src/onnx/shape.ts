/**
 * Build-time shape reasoning. A dim is a number (static), a string (symbolic, named)
 * or null (unknown). Only mismatches that are certain are reported.
 */
import type { Dim } from './onnx-proto.js';

export type Shape = readonly Dim[];

/** True when two dims are certainly different at run time. */
export function dimsConflict(a: Dim, b: Dim): boolean {
  return typeof a === 'number' && typeof b === 'number' && a !== b;
}

/** The most specific of two dims that are assumed equal. */
export function unifyDims(a: Dim, b: Dim): Dim {
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  if (a !== null && a === b) return a;
  return a ?? b;
}

export function formatShape(shape: Shape | null): string {
  if (shape === null) return '[?]';
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

/** Number of elements when all dims are static. */
export function staticSize(shape: Shape): number | null {
  let size = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return null;
    size *= d;
  }
  return size;
}

/** Normalizes a possibly negative axis against a rank, or returns null when out of range. */
export function normalizeAxis(axis: number, rank: number): number | null {
  const a = axis < 0 ? axis + rank : axis;
  return Number.isInteger(a) && a >= 0 && a < rank ? a : null;
}

/**
 * Numpy-style multidirectional broadcasting. Returns the broadcast shape, or a
 * description of the first certain conflict.
 */
export function broadcastShapes(shapes: readonly (Shape | null)[]): Shape | null | { conflict: string } {
  if (shapes.some((s) => s === null)) return null;
  const known = shapes as readonly Shape[];
  const rank = Math.max(...known.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let result: Dim = 1;
    for (const s of known) {
      const index = s.length - rank + i;
      // Missing leading dims broadcast as 1; an unknown (null) dim stays unknown.
      const d: Dim = index >= 0 ? (s[index] as Dim) : 1;
      if (d === 1) continue;
      if (result === 1) {
        result = d;
      } else if (dimsConflict(result, d)) {
        return { conflict: `cannot broadcast ${known.map(formatShape).join(' with ')} (axis ${i}: ${result} vs ${d})` };
      } else if (typeof result === 'string' && typeof d === 'string' && result !== d) {
        result = null;
      } else {
        result = unifyDims(result, d);
      }
    }
    out.push(result);
  }
  return out;
}
