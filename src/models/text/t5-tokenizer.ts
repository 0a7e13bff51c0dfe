/**
 * T5 sentencepiece (Unigram) tokenizer from `tokenizer.json` (diffusers `tokenizer_2/`),
 * run by @huggingface/tokenizers. FLUX appends EOS `</s>` (id 1), truncates so the EOS still
 * fits, and right-pads with `<pad>` (id 0) to 512 (dev) or 256 (schnell); there is no
 * attention mask (docs/flux-math.md §2.9).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './tokenizer-errors.js';
import { buildTokenizer, readTokenizerJson } from './tokenizer-files.js';

export class T5Tokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly eos: number,
    readonly pad: number,
  ) {}

  static fromFolder(folder: string): T5Tokenizer {
    const path = join(folder, 'tokenizer.json');
    if (!existsSync(path)) {
      const hint = existsSync(join(folder, 'spiece.model')) ? ' (spiece.model alone is not read; tokenizer.json ships beside it in diffusers folders)' : '';
      throw new TokenizerError(folder, `expected tokenizer.json${hint}`);
    }
    return T5Tokenizer.fromJson(path, readTokenizerJson(path));
  }

  static fromJson(source: string, spec: unknown): T5Tokenizer {
    const { tokenizer, ids } = buildTokenizer(source, spec, 'T5', ['</s>', '<pad>']);
    return new T5Tokenizer(tokenizer, ids['</s>'], ids['<pad>']);
  }

  /** Content token ids of a prompt, without EOS. */
  tokens(prompt: string): number[] {
    return this.tokenizer.encode(prompt, { add_special_tokens: false }).ids;
  }

  /** At most length−1 tokens + EOS, padded with <pad> to `length`. */
  encode(prompt: string, length: number): { ids: number[]; truncated: boolean } {
    const content = this.tokens(prompt);
    const kept = content.slice(0, length - 1);
    const ids = [...kept, this.eos];
    while (ids.length < length) ids.push(this.pad);
    return { ids, truncated: kept.length < content.length };
  }
}
