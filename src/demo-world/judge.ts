/**
 * The judge: reads a demo-world picture back from its pixels (background colour; each object's
 * colour, shape, size and position) and scores it against a caption. Shapes are told apart by a
 * few mask measures (fill of the bounding box, a hole at the centre, the diagonals, the weight of
 * the lower half, the middle of the bottom edge) compared with those of the ideal shapes; tests and bench/builtin-quality.ts use it.
 */
import type { RgbPixels } from './render.js';
import { renderScene } from './render.js';
import { parseCaption, RADIUS, type CaptionSpec, type SceneObject } from './scene.js';
import {
  BACKGROUNDS,
  OBJECT_COLOURS,
  POSITIONS,
  SHAPES,
  TOK,
  TOK_COLOUR,
  type Background,
  type ObjectColour,
  type Position,
  type Rgb,
  type Shape,
  type Size,
} from './vocabulary.js';

export interface SeenObject {
  colour: ObjectColour | typeof TOK;
  shape: Shape | typeof TOK;
  size: Size;
  position: Position;
  /** Bounding-box centre as fractions of width and height; area as a fraction of the picture. */
  x: number;
  y: number;
  area: number;
}

export interface SeenPicture {
  background: Background;
  /** Largest first. */
  objects: SeenObject[];
  /** Separate non-background regions (an object with its rim is one). */
  regions: number;
}

/** Per asked-for attribute: whether the picture shows it (undefined: the caption leaves it free). */
export interface ObjectVerdict {
  colour: boolean;
  shape: boolean;
  size?: boolean;
  position?: boolean;
}

export interface Verdict {
  seen: SeenPicture;
  background?: boolean;
  objects: ObjectVerdict[];
  /** No region beyond the asked objects is seen (stray blobs above the speck size). */
  clean: boolean;
  /** Every asked-for attribute is shown and the picture is clean. */
  correct: boolean;
  /** A TOK (a TOK-coloured object of TOK's shape) is in the picture. */
  tok: boolean;
  /** A TOK-coloured object of any shape is in the picture (TOK's colour without its plus sign counts here, not in `tok`). */
  tokColour: boolean;
}

/** The long side pictures are reduced to before reading (box filter). */
const READ_SIDE = 192;
/** Colour distances (RGB, 0–255): a pixel this close to the background is background; this close to an object colour is that colour. */
const BACKGROUND_DISTANCE = 70;
const OBJECT_DISTANCE = 95;
/** Objects smaller than this fraction of the picture are ignored (specks, blur). */
const MIN_AREA = 0.004;

const distance = (a: Rgb, b: Rgb) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

function nearest<K extends string>(palette: Record<K, Rgb>, colour: Rgb): { key: K; distance: number } {
  let best = { key: '' as K, distance: Infinity };
  for (const [key, value] of Object.entries(palette) as [K, Rgb][]) {
    const d = distance(value, colour);
    if (d < best.distance) best = { key, distance: d };
  }
  return best;
}

function reduce(picture: RgbPixels): RgbPixels {
  const scale = Math.max(1, Math.ceil(Math.max(picture.width, picture.height) / READ_SIDE));
  if (scale === 1) return picture;
  const [w, h] = [Math.floor(picture.width / scale), Math.floor(picture.height / scale)];
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let dy = 0; dy < scale; dy++)
          for (let dx = 0; dx < scale; dx++) sum += picture.data[((y * scale + dy) * picture.width + x * scale + dx) * 3 + c] as number;
        data[(y * w + x) * 3 + c] = Math.round(sum / scale ** 2);
      }
    }
  }
  return { width: w, height: h, data };
}

function borderColour(p: RgbPixels): Rgb {
  const values: number[][] = [[], [], []];
  const add = (x: number, y: number) => {
    for (let c = 0; c < 3; c++) values[c]?.push(p.data[(y * p.width + x) * 3 + c] as number);
  };
  for (let x = 0; x < p.width; x++) {
    add(x, 0);
    add(x, p.height - 1);
  }
  for (let y = 0; y < p.height; y++) {
    add(0, y);
    add(p.width - 1, y);
  }
  const median = (v: number[]) => v.sort((a, b) => a - b)[v.length >> 1] as number;
  return values.map(median) as unknown as Rgb;
}

const OBJECT_PALETTE: Record<ObjectColour | typeof TOK, Rgb> = { ...OBJECT_COLOURS, [TOK]: TOK_COLOUR };

interface Mask {
  width: number;
  height: number;
  on: Uint8Array;
}

/** Shape measures of a mask inside its bounding box: fill, hole at the centre, diagonals covered, share of the lower half, bottom edge's middle. */
function measures(mask: Mask, box: { x0: number; y0: number; x1: number; y1: number }): number[] {
  const at = (fx: number, fy: number) => {
    const x = Math.min(box.x1, Math.max(box.x0, Math.round(box.x0 + fx * (box.x1 - box.x0))));
    const y = Math.min(box.y1, Math.max(box.y0, Math.round(box.y0 + fy * (box.y1 - box.y0))));
    return mask.on[y * mask.width + x] as number;
  };
  let area = 0;
  let lower = 0;
  const midY = (box.y0 + box.y1) / 2;
  for (let y = box.y0; y <= box.y1; y++) {
    for (let x = box.x0; x <= box.x1; x++) {
      if (mask.on[y * mask.width + x] !== 1) continue;
      area++;
      if (y > midY) lower++;
    }
  }
  const boxArea = (box.x1 - box.x0 + 1) * (box.y1 - box.y0 + 1);
  let centre = 0;
  for (const dy of [-0.06, 0, 0.06]) for (const dx of [-0.06, 0, 0.06]) centre += at(0.5 + dx, 0.5 + dy);
  const diagonals = at(0.25, 0.25) + at(0.75, 0.25) + at(0.25, 0.75) + at(0.75, 0.75);
  const bottomMiddle = at(0.5, 0.92) + at(0.45, 0.92) + at(0.55, 0.92);
  return [area / boxArea, centre / 9, diagonals / 4, lower / Math.max(area, 1), bottomMiddle / 3];
}

const PROTOTYPE_RADIUS = 0.4;

/** The measures of each ideal shape and its half extent per unit of radius, from a clean render. */
const PROTOTYPES = new Map(
  ([...SHAPES, TOK] as (Shape | typeof TOK)[]).map((shape) => {
    const picture = renderScene({ background: 'black', objects: [{ shape, colour: 'red', x: 0.5, y: 0.5, radius: PROTOTYPE_RADIUS }] }, 96, 96);
    const seen = readComponents(picture, 'black').seen[0] as Component;
    return [shape, { measures: seen.measures, extent: seen.halfExtent / PROTOTYPE_RADIUS }] as const;
  }),
);
const WEIGHTS = [2, 2, 1, 2, 2];

function classify(m: number[]): Shape | typeof TOK {
  let best: [Shape | typeof TOK, number] = ['circle', Infinity];
  for (const [shape, p] of PROTOTYPES) {
    const d = m.reduce((s, v, i) => s + (WEIGHTS[i] as number) * (v - (p.measures[i] as number)) ** 2, 0);
    if (d < best[1]) best = [shape, d];
  }
  return best[0];
}

interface Component {
  colour: ObjectColour | typeof TOK;
  measures: number[];
  x: number;
  y: number;
  halfExtent: number;
  area: number;
}

/** The 4-connected groups of equal label (−1 is no label) at least MIN_AREA of the picture, as pixel indices. */
function connectedGroups(width: number, height: number, labels: Int8Array): number[][] {
  const n = width * height;
  const groups: number[][] = [];
  const visited = new Uint8Array(n);
  for (let start = 0; start < n; start++) {
    if (labels[start] === -1 || visited[start] === 1) continue;
    const label = labels[start] as number;
    const stack = [start];
    const members: number[] = [];
    visited[start] = 1;
    while (stack.length > 0) {
      const i = stack.pop() as number;
      members.push(i);
      const [x, y] = [i % width, Math.floor(i / width)];
      for (const [nx, ny] of [
        [x - 1, y],
        [x + 1, y],
        [x, y - 1],
        [x, y + 1],
      ] as const) {
        const j = ny * width + nx;
        if (nx < 0 || ny < 0 || nx >= width || ny >= height || visited[j] === 1 || labels[j] !== label) continue;
        visited[j] = 1;
        stack.push(j);
      }
    }
    if (members.length >= MIN_AREA * n) groups.push(members);
  }
  return groups;
}

function readComponents(p: RgbPixels, background: Background): { seen: Component[]; regions: number } {
  const bg = BACKGROUNDS[background];
  const n = p.width * p.height;
  const labels = new Int8Array(n).fill(-1);
  const foreground = new Int8Array(n).fill(-1);
  const keys = Object.keys(OBJECT_PALETTE) as (ObjectColour | typeof TOK)[];
  for (let i = 0; i < n; i++) {
    const colour: Rgb = [p.data[i * 3] as number, p.data[i * 3 + 1] as number, p.data[i * 3 + 2] as number];
    if (distance(colour, bg) < BACKGROUND_DISTANCE) continue;
    foreground[i] = 0;
    const best = nearest(OBJECT_PALETTE, colour);
    if (best.distance < OBJECT_DISTANCE) labels[i] = keys.indexOf(best.key);
  }
  const seen: Component[] = [];
  const unit = Math.min(p.width, p.height);
  for (const members of connectedGroups(p.width, p.height, labels)) {
    const label = labels[members[0] as number] as number;
    const box = { x0: p.width, y0: p.height, x1: 0, y1: 0 };
    const on = new Uint8Array(n);
    for (const i of members) {
      const [x, y] = [i % p.width, Math.floor(i / p.width)];
      on[i] = 1;
      [box.x0, box.x1, box.y0, box.y1] = [Math.min(box.x0, x), Math.max(box.x1, x), Math.min(box.y0, y), Math.max(box.y1, y)];
    }
    seen.push({
      colour: keys[label] as ObjectColour | typeof TOK,
      measures: measures({ width: p.width, height: p.height, on }, box),
      x: (box.x0 + box.x1 + 1) / 2 / p.width,
      y: (box.y0 + box.y1 + 1) / 2 / p.height,
      halfExtent: Math.max(box.x1 - box.x0 + 1, box.y1 - box.y0 + 1) / 2 / unit,
      area: members.length / n,
    });
  }
  // Regions: connected non-background areas whatever their colour, so an object's rim of blended
  // colour (the autoencoder's 16-px cells) counts with the object, not as another one.
  return { seen: seen.sort((a, b) => b.area - a.area), regions: connectedGroups(p.width, p.height, foreground).length };
}

const SIZE_THRESHOLD = (RADIUS.small + RADIUS.large) / 2;

function nearestPosition(x: number, y: number): Position {
  let best: [Position, number] = ['centre', Infinity];
  for (const [name, anchor] of Object.entries(POSITIONS) as [Position, { x: number; y: number }][]) {
    const d = Math.hypot(x - anchor.x, y - anchor.y);
    if (d < best[1]) best = [name, d];
  }
  return best[0];
}

/** What the picture shows. */
export function readPicture(picture: RgbPixels): SeenPicture {
  const p = reduce(picture);
  const background = nearest(BACKGROUNDS, borderColour(p)).key;
  const { seen, regions } = readComponents(p, background);
  const objects = seen.map((c): SeenObject => {
    const shape = classify(c.measures);
    return {
      colour: c.colour,
      shape,
      size: c.halfExtent / (PROTOTYPES.get(shape)?.extent ?? 1) > SIZE_THRESHOLD ? 'large' : 'small',
      position: nearestPosition(c.x, c.y),
      x: c.x,
      y: c.y,
      area: c.area,
    };
  });
  return { background, objects, regions };
}

function verdictFor(asked: SceneObject, seen: SeenObject | undefined): ObjectVerdict {
  const colour = asked.shape === TOK ? TOK : asked.colour;
  return {
    colour: seen?.colour === colour,
    shape: seen?.shape === asked.shape,
    ...(asked.size === undefined ? {} : { size: seen?.size === asked.size }),
    ...(asked.position === undefined ? {} : { position: seen?.position === asked.position }),
  };
}

/**
 * Scores a picture against a world caption (or its parsed spec). One object: the largest one seen
 * is compared; two: the two largest, the left one with the first.
 */
export function judge(picture: RgbPixels, caption: string | CaptionSpec): Verdict {
  const spec = typeof caption === 'string' ? parseCaption(caption) : caption;
  const seen = readPicture(picture);
  const candidates = seen.objects.slice(0, spec.objects.length).sort((a, b) => a.x - b.x);
  const objects =
    spec.objects.length === 1 ? [verdictFor(spec.objects[0] as SceneObject, seen.objects[0])] : spec.objects.map((o, i) => verdictFor(o, candidates[i]));
  const background = spec.background === undefined ? undefined : seen.background === spec.background;
  const clean = seen.regions <= spec.objects.length;
  const correct = clean && background !== false && objects.every((o) => Object.values(o).every(Boolean));
  const tokColoured = seen.objects.filter((o) => o.colour === TOK);
  const tok = tokColoured.some((o) => o.shape === TOK);
  return { seen, ...(background === undefined ? {} : { background }), objects, clean, correct, tok, tokColour: tokColoured.length > 0 };
}
