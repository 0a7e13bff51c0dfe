/**
 * Tokenizes prompts for T5 and CLIP on a worker thread (tokenizer-thread.ts), so that the
 * main event loop never runs a tokenizer: a long or hostile prompt costs that thread's time,
 * not the server's answers. The thread starts on the first prompt and does not keep the
 * process alive while idle.
 */
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../../util/module-worker.js';
import type { EncoderIds, TokenizerFolders, TokenizeResponse } from './tokenizer-protocol.js';

export interface TokenizedPrompt {
  t5: EncoderIds;
  clip: EncoderIds;
}

interface Pending {
  resolve(value: TokenizedPrompt): void;
  reject(error: Error): void;
}

export class PromptTokenizer {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly folders: TokenizerFolders) {}

  private start(): Worker {
    const worker = startModuleWorker(import.meta.url, 'tokenizer-thread', { workerData: this.folders });
    worker.on('message', (response: TokenizeResponse) => this.settle(response));
    worker.on('error', (error) => this.failAll(new Error(`tokenizer thread crashed: ${error.message}`)));
    worker.on('exit', () => {
      this.worker = undefined;
      this.failAll(new Error('tokenizer thread exited'));
    });
    return worker;
  }

  private settle(response: TokenizeResponse): void {
    const pending = this.pending.get(response.id);
    if (pending === undefined) return;
    this.pending.delete(response.id);
    if (this.pending.size === 0) this.worker?.unref();
    if ('error' in response) pending.reject(Object.assign(new Error(response.error.message), { name: response.error.name }));
    else pending.resolve({ t5: response.t5, clip: response.clip });
  }

  private failAll(error: Error): void {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const pending of waiting) pending.reject(error);
  }

  /** T5 ids framed to `t5Length` and CLIP ids framed to 77, each with whether the prompt was cut. */
  encode(prompt: string, t5Length: number): Promise<TokenizedPrompt> {
    this.worker ??= this.start();
    const worker = this.worker;
    const id = this.nextId++;
    worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, prompt, t5Length });
    });
  }
}
