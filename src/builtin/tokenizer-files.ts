/**
 * Small tokenizer files written by our code (the built-in model's and the tests'; nothing is
 * downloaded): a byte-level CLIP BPE and a T5 Unigram, in the formats diffusers folders hold.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** GPT-2/CLIP byte → printable character mapping used by byte-level BPE vocabularies. */
function byteChars(): string[] {
  const printable = [
    ...Array.from({ length: 94 }, (_, i) => 33 + i),
    ...Array.from({ length: 12 }, (_, i) => 161 + i),
    ...Array.from({ length: 82 }, (_, i) => 174 + i),
  ];
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable.includes(b) ? b : 256 + extra++));
}

/**
 * Left-to-right merges that make each (lower-case ASCII) word one token: `c i`, `ci r`, …, `circl e</w>`,
 * ranked in the order of `words` (a later word's first merge, `g r` of grey, can split an earlier one's).
 */
function wordMerges(words: readonly string[]): string[] {
  const merges = new Set<string>();
  for (const word of words.map((w) => w.toLowerCase())) {
    for (let i = 1; i < word.length; i++) merges.add(`${word.slice(0, i)} ${word[i]}${i === word.length - 1 ? '</w>' : ''}`);
  }
  return [...merges];
}

/**
 * Writes a small CLIP vocabulary: every byte alone and word-final, the merges that make each of
 * `words` one token (when no earlier word's merges split it), a few more, the two special tokens.
 */
export function writeClipTokenizer(folder: string, words: readonly string[] = []): string {
  mkdirSync(folder, { recursive: true });
  const vocab: Record<string, number> = {};
  for (const c of byteChars()) vocab[c] = Object.keys(vocab).length;
  for (const c of byteChars()) vocab[`${c}</w>`] = Object.keys(vocab).length;
  const merges = [...new Set([...wordMerges(words), 'h e', 'l l', 'he ll', 'hell o</w>', 'w o', 'wo r', 'wor l', 'worl d</w>'])];
  for (const m of merges) vocab[m.replace(' ', '')] ??= Object.keys(vocab).length;
  vocab['<|startoftext|>'] = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = Object.keys(vocab).length;
  writeFileSync(join(folder, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(folder, 'merges.txt'), `#version: 0.2\n${merges.join('\n')}\n`);
  return folder;
}

/** A T5 Unigram piece and its log-probability score. */
export type UnigramPiece = [string, number];

/** The three T5 specials (<pad> 0, </s> 1, <unk> 2) followed by `pieces`. */
export function writeT5Tokenizer(folder: string, pieces: readonly UnigramPiece[]): string {
  mkdirSync(folder, { recursive: true });
  const vocab: UnigramPiece[] = [['<pad>', 0], ['</s>', 0], ['<unk>', 0], ...pieces];
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
      model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: false },
    }),
  );
  return folder;
}
