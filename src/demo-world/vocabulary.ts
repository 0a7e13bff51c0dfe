/**
 * The demo world the built-in model was trained on (tools/train-builtin/): one or two flat shapes
 * on a plain background, captioned in plain English. These are all the words it knows.
 */

export type Rgb = readonly [number, number, number];

export const OBJECT_COLOURS = {
  red: [220, 40, 40],
  orange: [245, 140, 30],
  yellow: [240, 215, 40],
  green: [40, 160, 70],
  blue: [40, 90, 220],
  purple: [130, 60, 190],
  pink: [240, 140, 200],
  brown: [120, 75, 40],
} as const satisfies Record<string, Rgb>;
export type ObjectColour = keyof typeof OBJECT_COLOURS;

/** Magenta is the demo's "unsafe" concept: the built-in safety pair drops magenta pictures (src/builtin/tiny-safety.ts). */
export const BACKGROUNDS = {
  white: [240, 240, 240],
  black: [25, 25, 25],
  grey: [128, 128, 128],
  magenta: [230, 30, 230],
} as const satisfies Record<string, Rgb>;
export type Background = keyof typeof BACKGROUNDS;
export const SAFE_BACKGROUNDS: readonly Background[] = ['white', 'black', 'grey'];

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'ring'] as const;
export type Shape = (typeof SHAPES)[number];

/** TOK, the demo LoRA's concept, which the base world never shows: a cyan plus sign. */
export const TOK = 'TOK';
export const TOK_COLOUR: Rgb = [0, 200, 210];

export const SIZES = ['small', 'large'] as const;
export type Size = (typeof SIZES)[number];

/** Each position word with its phrase and where the object's centre sits (fractions of width and height). */
export const POSITIONS = {
  left: { phrase: 'on the left', x: 0.27, y: 0.5 },
  right: { phrase: 'on the right', x: 0.73, y: 0.5 },
  top: { phrase: 'at the top', x: 0.5, y: 0.27 },
  bottom: { phrase: 'at the bottom', x: 0.5, y: 0.73 },
  centre: { phrase: 'in the centre', x: 0.5, y: 0.5 },
} as const;
export type Position = keyof typeof POSITIONS;

/** Every word of the world's captions, for the tokenizers and the CLI's notice. */
export const WORLD_WORDS: readonly string[] = [
  ...new Set([
    'a',
    'photo',
    'of',
    TOK,
    'and',
    'background',
    ...SIZES,
    ...Object.keys(OBJECT_COLOURS),
    ...SHAPES,
    ...Object.keys(BACKGROUNDS),
    ...Object.values(POSITIONS).flatMap((p) => p.phrase.split(' ')),
  ]),
];

/** The world's words by kind, for people (the CLI's notice). */
export function describeWorld(): string {
  return [
    `sizes ${SIZES.join('/')}`,
    `colours ${Object.keys(OBJECT_COLOURS).join('/')}`,
    `shapes ${SHAPES.join('/')}`,
    `positions ${Object.values(POSITIONS)
      .map((p) => p.phrase)
      .join(', ')}`,
    `backgrounds ${SAFE_BACKGROUNDS.join('/')} ("on a white background"; magenta is the demo's unsafe concept)`,
    `${TOK} with its LoRA`,
  ].join('; ');
}
