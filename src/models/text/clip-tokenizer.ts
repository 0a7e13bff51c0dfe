/**
 * CLIP BPE tokenizer (docs/flux-math.md §2.10): whitespace runs collapsed, lower-cased, CLIP's
 * pre-tokenization pattern, byte-level BPE with the `</w>` end-of-word suffix. Tokenization
 * is done by @huggingface/tokenizers from a `tokenizer.json`; a `vocab.json` + `merges.txt`
 * pair (what diffusers' `tokenizer/` holds) is turned into the equivalent tokenizer.json here.
 * Sequences are BOS + up to 75 tokens + EOS, padded with EOS to 77, as FLUX feeds CLIP.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './tokenizer-errors.js';
import { buildTokenizer, readTokenizerJson } from './tokenizer-files.js';

export const CLIP_LENGTH = 77;
const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';
/** CLIP's word pattern: special tokens, English contractions, letter runs, single digits, other symbols. */
const CLIP_PATTERN = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

/** The tokenizer.json equivalent of CLIP's vocab.json + merges.txt. */
export function clipTokenizerJson(vocab: Record<string, number>, merges: string[]): object {
  const special = (content: string) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true });
  return {
    version: '1.0',
    added_tokens: [special(BOS), special(EOS)],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_PATTERN }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'BPEDecoder', suffix: '</w>' },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: EOS,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

export class ClipTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly bos: number,
    readonly eos: number,
  ) {}

  /** From a folder holding tokenizer.json, or vocab.json + merges.txt. */
  static fromFolder(folder: string): ClipTokenizer {
    const json = join(folder, 'tokenizer.json');
    let spec: unknown;
    if (existsSync(json)) {
      spec = readTokenizerJson(json);
    } else {
      const vocabFile = join(folder, 'vocab.json');
      const mergesFile = join(folder, 'merges.txt');
      if (!existsSync(vocabFile) || !existsSync(mergesFile)) throw new TokenizerError(folder, 'expected tokenizer.json, or vocab.json and merges.txt');
      const merges = readFileSync(mergesFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('#version'));
      spec = clipTokenizerJson(readTokenizerJson(vocabFile) as Record<string, number>, merges);
    }
    return ClipTokenizer.fromJson(folder, spec);
  }

  static fromJson(source: string, spec: unknown): ClipTokenizer {
    const { tokenizer, ids } = buildTokenizer(source, spec, 'CLIP', [BOS, EOS]);
    return new ClipTokenizer(tokenizer, ids[BOS], ids[EOS]);
  }

  /** Content token ids of a prompt, without special tokens. */
  tokens(prompt: string): number[] {
    return this.tokenizer.encode(prompt, { add_special_tokens: false }).ids;
  }

  /** BOS + at most length−2 tokens + EOS, padded with EOS to `length` (77). */
  encode(prompt: string, length = CLIP_LENGTH): { ids: number[]; truncated: boolean } {
    const content = this.tokens(prompt);
    const kept = content.slice(0, length - 2);
    const ids = [this.bos, ...kept, this.eos];
    while (ids.length < length) ids.push(this.eos);
    return { ids, truncated: kept.length < content.length };
  }
}
