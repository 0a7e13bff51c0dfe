import { describe, expect, it } from 'vitest';
import { judge, readPicture } from '../../../src/demo-world/judge.js';
import { renderScene } from '../../../src/demo-world/render.js';
import { CaptionError, captionOf, parseCaption, randomCaption, sceneFor } from '../../../src/demo-world/scene.js';
import { seededRandom } from '../../../src/util/seeded-random.js';
import { OBJECT_COLOURS, TOK_COLOUR, WORLD_WORDS } from '../../../src/demo-world/vocabulary.js';

describe('demo-world captions', () => {
  it('parse back to the spec they were written from, and use only the world’s words', () => {
    const random = seededRandom(3);
    for (let i = 0; i < 200; i++) {
      const spec = randomCaption(random, { tok: 0.2 });
      const caption = captionOf(spec);
      expect(parseCaption(caption)).toEqual(spec);
      for (const word of caption.split(' ')) expect(WORLD_WORDS).toContain(word);
    }
    expect(parseCaption('a photo of TOK')).toEqual({ objects: [{ shape: 'TOK' }] });
  });

  it.each([
    ['a red hexagon', /unknown shape "hexagon"/],
    ['a teal circle', /unknown colour "teal"/],
    ['red circle', /an object starts with "a"/],
    ['a red circle on a plaid background', /unknown background "plaid"/],
    ['a red circle and a blue square and a green star', /at most two objects/],
    ['a big red circle', /unknown colour "big"/],
    ['a red red circle', /unexpected words "red"/],
  ])('refuses %s, naming the problem', (caption, message) => {
    expect(() => parseCaption(caption)).toThrow(CaptionError);
    expect(() => parseCaption(caption)).toThrow(message);
  });

  it('the same seed gives the same captions and scenes', () => {
    const draw = (seed: number) => {
      const random = seededRandom(seed);
      return Array.from({ length: 5 }, () => sceneFor(randomCaption(random), random));
    };
    expect(draw(9)).toEqual(draw(9));
    expect(draw(9)).not.toEqual(draw(10));
  });
});

describe('the judge', () => {
  it('reads every attribute of rendered scenes back, at every size and aspect ratio', () => {
    const random = seededRandom(11);
    const sizes = [
      [1024, 1024],
      [512, 512],
      [608, 416],
      [320, 768],
      [1344, 768],
    ] as const;
    for (let i = 0; i < 40; i++) {
      const spec = randomCaption(random, { tok: 0.1, backgrounds: ['white', 'black', 'grey', 'magenta'] });
      const [width, height] = sizes[i % sizes.length] as readonly [number, number];
      const verdict = judge(renderScene(sceneFor(spec, random), width, height), captionOf(spec));
      expect({ caption: captionOf(spec), correct: verdict.correct }).toEqual({ caption: captionOf(spec), correct: true });
    }
  });

  it('says what is wrong: colour, shape, size, position and background each', () => {
    const picture = renderScene(sceneFor(parseCaption('a large red circle on the left on a white background')), 512, 512);
    expect(judge(picture, 'a small blue square on the right on a black background')).toMatchObject({
      background: false,
      objects: [{ colour: false, shape: false, size: false, position: false }],
      correct: false,
      tok: false,
    });
    expect(readPicture(picture)).toMatchObject({ background: 'white', objects: [{ colour: 'red', shape: 'circle', size: 'large', position: 'left' }] });
  });

  it('matches two objects left to right and finds TOK', () => {
    const picture = renderScene(sceneFor(parseCaption('a small TOK on the left and a large green star on the right on a grey background')), 768, 512);
    const verdict = judge(picture, 'a small TOK on the left and a large green star on the right on a grey background');
    expect(verdict.correct).toBe(true);
    expect(verdict.tok).toBe(true);
    expect(judge(picture, 'a large green star on the left and a small TOK on the right').correct).toBe(false);
  });

  it('fails a picture with stray objects beside the asked one, and a TOK-coloured blob that is not a plus', () => {
    const caption = 'a large red circle on the left on a white background';
    const asked = sceneFor(parseCaption(caption));
    expect(judge(renderScene(asked, 512, 512), caption)).toMatchObject({ clean: true, correct: true });
    const stray = { ...asked, objects: [...asked.objects, { shape: 'square' as const, colour: 'yellow' as const, x: 0.8, y: 0.8, radius: 0.06 }] };
    expect(judge(renderScene(stray, 512, 512), caption)).toMatchObject({ clean: false, correct: false, objects: [{ colour: true, shape: true }] });
    const cyanCircle = renderScene({ background: 'white', objects: [{ shape: 'circle', colour: 'red', x: 0.5, y: 0.5, radius: 0.19 }] }, 256, 256);
    for (let i = 0; i < cyanCircle.data.length; i += 3) if (cyanCircle.data[i + 1] === OBJECT_COLOURS.red[1]) cyanCircle.data.set(TOK_COLOUR, i);
    expect(judge(cyanCircle, 'a photo of TOK')).toMatchObject({ tok: false, tokColour: true });
  });

  it('sees nothing in a blank picture', () => {
    const blank = renderScene({ background: 'black', objects: [] }, 256, 256);
    expect(readPicture(blank)).toEqual({ background: 'black', objects: [], regions: 0 });
    expect(judge(blank, 'a red circle').correct).toBe(false);
  });
});
