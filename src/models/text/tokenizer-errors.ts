export class TokenizerError extends Error {
  constructor(source: string, detail: string) {
    super(`tokenizer ${source}: ${detail}`);
    this.name = 'TokenizerError';
  }
}
