/**
 * Long and hostile prompts: only a window of the prompt is tokenized (its tokens are those of
 * the whole prompt, as the reference's truncation keeps them), tokenization runs on its own
 * thread (the main event loop keeps answering), and a megabyte prompt costs a bounded time.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClipTokenizer, CLIP_LENGTH } from '../../../src/models/text/clip-tokenizer.js';
import { PromptTokenizer } from '../../../src/models/text/prompt-tokenizer.js';
import { CHARS_PER_TOKEN, promptWindow } from '../../../src/models/text/prompt-window.js';
import { T5Tokenizer } from '../../../src/models/text/t5-tokenizer.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { writeClipTokenizer, writeT5Tokenizer } from '../../helpers/tokenizer-files.js';

const tmp = useTempDir('prompt-tokenizer-');
const folders = { t5: writeT5Tokenizer(join(tmp(), 't5')), clip: writeClipTokenizer(join(tmp(), 'clip')) };

/** A seeded prompt of `words` words of 1–30 letters, some punctuation and newlines. */
function prompt(words: number, seed: number): string {
  let state = seed;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    const length = 1 + Math.floor(next() * 30);
    out.push(Array.from({ length }, () => 'abcdefghijklmnopqrstuvwxyz,!'[Math.floor(next() * 28)]).join('') + (next() < 0.1 ? '\n' : ' '));
  }
  return out.join('');
}

describe('prompt window', () => {
  const t5 = T5Tokenizer.fromFolder(folders.t5);
  const clip = ClipTokenizer.fromFolder(folders.clip);

  it.each([
    [50, 1],
    [400, 2],
    [3000, 3],
    [6000, 4],
  ])('a prompt of %i words: the window gives the whole prompt its first tokens (seed %i)', (words, seed) => {
    const text = prompt(words, seed);
    for (const [length, encode] of [
      [512, (s: string) => t5.encode(s, 512)],
      [256, (s: string) => t5.encode(s, 256)],
      [CLIP_LENGTH, (s: string) => clip.encode(s)],
    ] as const) {
      const window = promptWindow(text, length);
      expect(window.text.length).toBeLessThanOrEqual(text.length);
      expect(encode(window.text)).toEqual(encode(text));
    }
  });

  it('bounds what is tokenized: megabytes of letters, of unknown symbols in one word, or of whitespace', () => {
    const letters = 'a photo of a cat '.repeat(70_000);
    const window = promptWindow(letters, 512);
    expect(window.cut).toBe(true);
    expect(window.text.replace(/\s/g, '').length).toBeLessThanOrEqual(CHARS_PER_TOKEN * 512);
    expect(window.text.endsWith('cat') || window.text.endsWith('photo') || window.text.endsWith('of') || window.text.endsWith('a')).toBe(true);
    const symbols = promptWindow('é'.repeat(1_000_000), 77);
    expect(symbols).toEqual({ text: 'é'.repeat(CHARS_PER_TOKEN * 77), cut: true });
    // Whitespace does not count (the tokenizers collapse it): the text after it is kept.
    const spaced = `a${' '.repeat(1_000_000)}b`;
    expect(promptWindow(spaced, 77)).toEqual({ text: spaced, cut: false });
    expect(promptWindow(`${'x '.repeat(10_000)}${' '.repeat(1000)}`, 77).cut).toBe(true);
  });
});

describe('PromptTokenizer (its own thread)', () => {
  it('frames T5 and CLIP ids as the tokenizers do, flagging truncation', async () => {
    const tokenizer = new PromptTokenizer(folders);
    const t5 = T5Tokenizer.fromFolder(folders.t5);
    const clip = ClipTokenizer.fromFolder(folders.clip);
    for (const text of ['a cat', prompt(2000, 9)]) {
      const result = await tokenizer.encode(text, 256);
      expect(result).toEqual({ t5: t5.encode(text, 256), clip: clip.encode(text) });
    }
    expect((await tokenizer.encode('a cat', 512)).t5.truncated).toBe(false);
  });

  it('a hostile prompt never stalls the main event loop, and is flagged truncated', async () => {
    const tokenizer = new PromptTokenizer(folders);
    await tokenizer.encode('warm up', 512);
    let longestGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
    }, 5);
    try {
      for (const hostile of ['é'.repeat(1_000_000), 'a photo of a cat '.repeat(60_000), `${'😀'.repeat(5000)} ${'x'.repeat(500_000)}`]) {
        const result = await tokenizer.encode(hostile, 512);
        expect(result.t5.truncated && result.clip.truncated).toBe(true);
      }
    } finally {
      clearInterval(timer);
    }
    // A "does not stall" bound, generous for a loaded machine: tokenizing the same prompts on this thread takes seconds.
    expect(longestGap).toBeLessThan(250);
  });

  it('reports a missing tokenizer folder as an error', async () => {
    const tokenizer = new PromptTokenizer({ t5: join(tmp(), 'nowhere'), clip: folders.clip });
    await expect(tokenizer.encode('a cat', 512)).rejects.toThrow(/nowhere: expected tokenizer\.json/);
  });
});
