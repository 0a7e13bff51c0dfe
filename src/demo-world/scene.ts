/**
 * Scenes of the demo world and their captions: a seeded sampler, the caption of a scene, and the
 * caption parser (the inverse, used to judge a picture against any world prompt).
 */
import {
  BACKGROUNDS,
  OBJECT_COLOURS,
  POSITIONS,
  SAFE_BACKGROUNDS,
  SHAPES,
  SIZES,
  TOK,
  type Background,
  type ObjectColour,
  type Position,
  type Shape,
  type Size,
} from './vocabulary.js';

/** One object: TOK has no colour word. x, y: its centre as fractions of width and height; radius: a fraction of the shorter side. */
export interface SceneObject {
  shape: Shape | typeof TOK;
  colour?: ObjectColour;
  size?: Size;
  position?: Position;
}

export interface PlacedObject extends SceneObject {
  x: number;
  y: number;
  radius: number;
}

export interface Scene {
  background: Background;
  objects: PlacedObject[];
}

/** What a caption asks for; missing words are free. */
export interface CaptionSpec {
  background?: Background;
  objects: SceneObject[];
}

export const RADIUS: Record<Size, number> = { small: 0.1, large: 0.19 };

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

/** Places an object: nominal geometry for its words, jittered by `random` when given. */
export function place(object: SceneObject, size: Size, position: Position, random?: () => number): PlacedObject {
  const jitter = (amount: number) => (random === undefined ? 0 : (random() * 2 - 1) * amount);
  const anchor = POSITIONS[position];
  return { ...object, x: anchor.x + jitter(0.03), y: anchor.y + jitter(0.03), radius: RADIUS[size] * (1 + jitter(0.1)) };
}

/** The scene a caption asks for, with free attributes drawn from `random` (nominal ones when absent). */
export function sceneFor(spec: CaptionSpec, random: () => number = () => 0): Scene {
  const two = spec.objects.length === 2;
  const positions: Position[] = ['left', 'right', 'top', 'bottom', 'centre'];
  return {
    background: spec.background ?? pick(random, SAFE_BACKGROUNDS),
    objects: spec.objects.map((o, i) =>
      place(o, o.size ?? pick(random, SIZES), o.position ?? (two ? (i === 0 ? 'left' : 'right') : pick(random, positions)), random),
    ),
  };
}

export interface SamplerOptions {
  /** Chance of a scene with two objects (left and right). */
  two?: number;
  /** Chance that a size, position or background word is left out of the caption. */
  omit?: number;
  /** Chance that a scene shows TOK (for the LoRA's data). */
  tok?: number;
  /** Backgrounds to draw from (default: the safe ones). */
  backgrounds?: readonly Background[];
}

/** A random caption of the world; the scene is then drawn with sceneFor. */
export function randomCaption(random: () => number, options: SamplerOptions = {}): CaptionSpec {
  const { two = 0.3, omit = 0.15, tok = 0, backgrounds = SAFE_BACKGROUNDS } = options;
  const keep = () => random() >= omit;
  const object = (): SceneObject => ({ shape: pick(random, SHAPES), colour: pick(random, Object.keys(OBJECT_COLOURS) as ObjectColour[]) });
  const withSize = (o: SceneObject): SceneObject => (keep() ? { ...o, size: pick(random, SIZES) } : o);
  let objects: SceneObject[];
  if (random() < two) {
    objects = [withSize(object()), withSize(object())].map((o, i) => ({ ...o, position: i === 0 ? 'left' : 'right' }));
  } else {
    const single = withSize(object());
    objects = [keep() ? { ...single, position: pick(random, Object.keys(POSITIONS) as Position[]) } : single];
  }
  if (random() < tok) {
    const first = objects[0] as SceneObject;
    objects[0] = {
      ...(first.size === undefined ? {} : { size: first.size }),
      ...(first.position === undefined ? {} : { position: first.position }),
      shape: TOK,
    };
  }
  return { ...(keep() ? { background: pick(random, backgrounds) } : {}), objects };
}

function objectWords(o: SceneObject): string {
  return ['a', o.size, o.shape === TOK ? undefined : o.colour, o.shape].filter((w) => w !== undefined).join(' ');
}

export function captionOf(spec: CaptionSpec): string {
  const parts = spec.objects.map((o) =>
    [objectWords(o), o.position === undefined ? undefined : POSITIONS[o.position].phrase].filter((w) => w !== undefined).join(' '),
  );
  const background = spec.background === undefined ? '' : ` on a ${spec.background} background`;
  return `${parts.join(' and ')}${background}`;
}

export class CaptionError extends Error {
  constructor(caption: string, detail: string) {
    super(`not a demo-world caption: "${caption}": ${detail}`);
    this.name = 'CaptionError';
  }
}

const phraseToPosition = new Map<string, Position>(Object.entries(POSITIONS).map(([name, p]) => [p.phrase, name as Position]));

function parseObject(caption: string, text: string): SceneObject {
  const words = text.trim().split(/\s+/);
  if (words[0] !== 'a') throw new CaptionError(caption, `an object starts with "a": "${text}"`);
  let rest = words.slice(1);
  let position: Position | undefined;
  const tail = rest.slice(-3).join(' ');
  if (phraseToPosition.has(tail)) {
    position = phraseToPosition.get(tail);
    rest = rest.slice(0, -3);
  }
  const size = (SIZES as readonly string[]).includes(rest[0] ?? '') ? (rest.shift() as Size) : undefined;
  const shape = rest.pop();
  const extras = { ...(size === undefined ? {} : { size }), ...(position === undefined ? {} : { position }) };
  if (shape === TOK && rest.length === 0) return { shape: TOK, ...extras };
  if (!(SHAPES as readonly string[]).includes(shape ?? '')) throw new CaptionError(caption, `unknown shape "${shape}"`);
  const colour = rest.shift();
  if (colour === undefined || !(colour in OBJECT_COLOURS)) throw new CaptionError(caption, `unknown colour "${colour}"`);
  if (rest.length > 0) throw new CaptionError(caption, `unexpected words "${rest.join(' ')}"`);
  return { shape: shape as Shape, colour: colour as ObjectColour, ...extras };
}

/** The spec of a world caption; "a photo of TOK" asks for TOK alone. */
export function parseCaption(caption: string): CaptionSpec {
  const text = caption.trim().replace(/\s+/g, ' ');
  if (text === `a photo of ${TOK}`) return { objects: [{ shape: TOK }] };
  const match = /^(.*?)(?: on a (\w+) background)?$/.exec(text) as RegExpExecArray;
  const background = match[2];
  if (background !== undefined && !(background in BACKGROUNDS)) throw new CaptionError(caption, `unknown background "${background}"`);
  const objects = (match[1] as string).split(' and ').map((part) => parseObject(caption, part));
  if (objects.length > 2) throw new CaptionError(caption, 'at most two objects');
  return { ...(background === undefined ? {} : { background: background as Background }), objects };
}
