/**
 * Worker-thread entry that tokenizes prompts for FLUX's two encoders, off the main event loop
 * (a long prompt must never stall the server): each request is one prompt, each answer its
 * framed T5 and CLIP ids. Only the prompt's window (prompt-window.ts) is tokenized.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ClipTokenizer, CLIP_LENGTH } from './clip-tokenizer.js';
import { promptWindow } from './prompt-window.js';
import { T5Tokenizer } from './t5-tokenizer.js';
import type { TokenizerFolders, TokenizeRequest, TokenizeResponse } from './tokenizer-protocol.js';

const folders = workerData as TokenizerFolders;
let tokenizers: { t5: T5Tokenizer; clip: ClipTokenizer } | undefined;

function framed(prompt: string, length: number, encode: (text: string) => { ids: number[]; truncated: boolean }) {
  const window = promptWindow(prompt, length);
  const { ids, truncated } = encode(window.text);
  return { ids, truncated: truncated || window.cut };
}

parentPort?.on('message', ({ id, prompt, t5Length }: TokenizeRequest) => {
  let response: TokenizeResponse;
  try {
    tokenizers ??= { t5: T5Tokenizer.fromFolder(folders.t5), clip: ClipTokenizer.fromFolder(folders.clip) };
    const { t5, clip } = tokenizers;
    response = {
      id,
      t5: framed(prompt, t5Length, (text) => t5.encode(text, t5Length)),
      clip: framed(prompt, CLIP_LENGTH, (text) => clip.encode(text)),
    };
  } catch (error) {
    response = { id, error: { name: (error as Error).name, message: (error as Error).message } };
  }
  parentPort?.postMessage(response);
});
