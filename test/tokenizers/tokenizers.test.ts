import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../../src/tokenizers/clip-tokenizer.js';
import { TokenizerError } from '../../src/tokenizers/errors.js';
import { T5Tokenizer } from '../../src/tokenizers/t5-tokenizer.js';
import { useTempDir } from '../helpers/temp-dir.js';

const tmp = useTempDir('tokenizers-');

/** GPT-2/CLIP byte → printable character mapping used by byte-level BPE vocabularies. */
function byteChars(): string[] {
  const printable = [...Array.from({ length: 94 }, (_, i) => 33 + i), ...Array.from({ length: 12 }, (_, i) => 161 + i), ...Array.from({ length: 82 }, (_, i) => 174 + i)];
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable.includes(b) ? b : 256 + extra++));
}

/** A small CLIP vocabulary: every byte alone and word-final, a few merges, the two special tokens. */
function clipFolder(): string {
  const folder = join(tmp(), 'clip');
  mkdirSync(folder, { recursive: true });
  const vocab: Record<string, number> = {};
  for (const c of byteChars()) vocab[c] = Object.keys(vocab).length;
  for (const c of byteChars()) vocab[`${c}</w>`] = Object.keys(vocab).length;
  const merges = ['h e', 'l l', 'he ll', 'hell o</w>', 'w o', 'wo r', 'wor l', 'worl d</w>'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  vocab['<|startoftext|>'] = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = Object.keys(vocab).length;
  writeFileSync(join(folder, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(folder, 'merges.txt'), `#version: 0.2\n${merges.join('\n')}\n`);
  return folder;
}

function t5Folder(): string {
  const folder = join(tmp(), 't5');
  mkdirSync(folder, { recursive: true });
  const pieces: [string, number][] = [['<pad>', 0], ['</s>', 0], ['<unk>', 0], ['▁', -2], ['▁a', -3], ['▁cat', -4], ['▁the', -4], ['s', -5], ['c', -6], ['a', -6], ['t', -6], ['h', -6], ['e', -6], [',', -5], ['!', -5], ['▁,', -7]];
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  writeFileSync(
    join(folder, 'tokenizer.json'),
    JSON.stringify({
      version: '1.0',
      added_tokens: [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')],
      normalizer: { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      post_processor: null,
      decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      model: { type: 'Unigram', unk_id: 2, vocab: pieces, byte_fallback: false },
    }),
  );
  return folder;
}

describe('CLIP tokenizer', () => {
  const tokenizer = ClipTokenizer.fromFolder(clipFolder());
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
  const tokenizer = T5Tokenizer.fromFolder(t5Folder());

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
