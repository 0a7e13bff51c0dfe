/** Messages between PromptTokenizer (main thread) and its tokenizer thread. */

export interface TokenizerFolders {
  t5: string;
  clip: string;
}

export interface TokenizeRequest {
  id: number;
  prompt: string;
  t5Length: number;
}

/** Framed ids for one encoder, and whether any of the prompt was left out. */
export interface EncoderIds {
  ids: number[];
  truncated: boolean;
}

export type TokenizeResponse = { id: number; t5: EncoderIds; clip: EncoderIds } | { id: number; error: { name: string; message: string } };
