import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../../../src/models/text/clip-tokenizer.js';
import { TokenizerError } from '../../../src/models/text/tokenizer-errors.js';
import { T5Tokenizer } from '../../../src/models/text/t5-tokenizer.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { writeClipTokenizer, writeT5Tokenizer } from '../../helpers/tokenizer-files.js';

const tmp = useTempDir('tokenizers-');

describe('CLIP tokenizer', () => {
  const tokenizer = ClipTokenizer.fromFolder(writeClipTokenizer(join(tmp(), 'clip')));
  const id = (piece: string) => (tokenizer as unknown as { tokenizer: { token_to_id(t: string): number } }).tokenizer.token_to_id(piece);

  it('lower-cases, collapses whitespace, splits punctuation and applies merges with </w>', () => {
    const { ids, truncated } = tokenizer.encode('Hello,   \n World!');
    expect(truncated).toBe(false);
    expect(ids.length).toBe(77);
    expect(ids.slice(0, 6)).toEqual([tokenizer.bos, id('hello</w>'), id(',</w>'), id('world</w>'), id('!</w>'), tokenizer.eos]);
    expect(ids.slice(6).every((v) => v === tokenizer.eos)).toBe(true);
  });

  it('handles unicode, emoji, an empty prompt and truncates long prompts to 75 tokens', () => {
    expect(tokenizer.tokens('😀')).toHaveLength(4); // four UTF-8 bytes, no merges
    expect(tokenizer.tokens('Café')).toHaveLength(5);
    expect(tokenizer.encode('').ids.slice(0, 3)).toEqual([tokenizer.bos, tokenizer.eos, tokenizer.eos]);
    expect(tokenizer.encode('   ').ids.slice(0, 2)).toEqual([tokenizer.bos, tokenizer.eos]);
    const long = tokenizer.encode('hello '.repeat(100));
    expect(long.truncated).toBe(true);
    expect(long.ids.length).toBe(77);
    expect(long.ids.slice(1, 76).every((v) => v === id('hello</w>'))).toBe(true);
    expect(long.ids[76]).toBe(tokenizer.eos);
  });

  it('reports missing or broken tokenizer files naming the folder', () => {
    const empty = join(tmp(), 'empty');
    mkdirSync(empty);
    expect(() => ClipTokenizer.fromFolder(empty)).toThrow(TokenizerError);
    expect(() => ClipTokenizer.fromFolder(empty)).toThrow(/expected tokenizer\.json, or vocab\.json and merges\.txt/);
    writeFileSync(join(empty, 'tokenizer.json'), '{ not json');
    expect(() => ClipTokenizer.fromFolder(empty)).toThrow(/tokenizer .*tokenizer\.json: cannot read/);
  });
});

describe('T5 tokenizer', () => {
  const tokenizer = T5Tokenizer.fromFolder(writeT5Tokenizer(join(tmp(), 't5')));

  it('appends EOS and pads with <pad> to the requested length, with no mask', () => {
    expect(tokenizer.encode('a cat', 8)).toEqual({ ids: [4, 5, 1, 0, 0, 0, 0, 0], truncated: false });
    expect(tokenizer.encode('the   cats!', 8).ids).toEqual([6, 5, 7, 14, 1, 0, 0, 0]);
    expect(tokenizer.encode('', 4).ids).toEqual([1, 0, 0, 0]);
  });

  it('maps unknown text (emoji) to <unk> and truncates so EOS still fits', () => {
    expect(tokenizer.tokens('😀')).toContain(2);
    const long = tokenizer.encode('a cat '.repeat(20), 6);
    expect(long).toEqual({ ids: [4, 5, 4, 5, 4, 1], truncated: true });
  });

  it('reports a folder without tokenizer.json', () => {
    const folder = join(tmp(), 'spiece-only');
    mkdirSync(folder);
    writeFileSync(join(folder, 'spiece.model'), 'x');
    expect(() => T5Tokenizer.fromFolder(folder)).toThrow(/expected tokenizer\.json \(spiece\.model alone is not read/);
  });
});
