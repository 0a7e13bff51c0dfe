/** Reading tokenizer files and building @huggingface/tokenizers instances, with errors naming the source. */
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './tokenizer-errors.js';

export function readTokenizerJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TokenizerError(path, `cannot read: ${(error as Error).message}`);
  }
}

/** A tokenizer from a tokenizer.json object and the ids of the special tokens it must have. */
export function buildTokenizer<T extends string>(
  source: string,
  spec: unknown,
  label: string,
  specials: readonly T[],
): { tokenizer: Tokenizer; ids: Record<T, number> } {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(spec as object, {});
  } catch (error) {
    throw new TokenizerError(source, `not a usable ${label} tokenizer: ${(error as Error).message}`);
  }
  const ids = {} as Record<T, number>;
  for (const token of specials) {
    const id = tokenizer.token_to_id(token);
    if (id === undefined) throw new TokenizerError(source, `the vocabulary lacks ${specials.join(' or ')}`);
    ids[token] = id;
  }
  return { tokenizer, ids };
}
