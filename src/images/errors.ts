/** A bad image input, named by the request input it came from ("image", "mask"). */
export class ImageInputError extends Error {
  constructor(
    readonly input: string,
    detail: string,
  ) {
    super(`input "${input}": ${detail}`);
    this.name = 'ImageInputError';
  }
}
