/**
 * What the server checks before it accepts a prediction: the predictor's own input rules
 * (schema and DECISIONS.md rules, every problem named) and every image given inline as a
 * data URI, decoded as the predictor would decode it. Such problems are the caller's, so
 * they are answered 422 even for async requests; URLs are only fetched when the prediction
 * runs (a failed download is a failed prediction, as in Cog).
 */
import { decodeImage } from '../images/decode.js';
import { ImageInputError } from '../images/errors.js';
import { readImageSource, type ImageSourceOptions } from '../images/source.js';
import { InputValidationError, resolveInput, type InputProblem } from '../predictor/inputs.js';
import { INPUT_SCHEMA } from '../predictor/schema.js';

const properties = INPUT_SCHEMA.properties as unknown as Record<string, { format?: string }>;
const IMAGE_INPUTS = Object.keys(properties).filter((name) => properties[name]?.format === 'uri');

async function imageProblem(name: string, value: string, source: ImageSourceOptions & { maxPixels: number }): Promise<InputProblem | undefined> {
  try {
    await decodeImage(name, await readImageSource(name, value, { ...source, allowLocalFiles: false }), source.maxPixels);
    return undefined;
  } catch (error) {
    if (error instanceof ImageInputError) return { input: name, message: error.message.replace(`input "${name}": `, '') };
    throw error;
  }
}

/** Throws InputValidationError listing every problem of `input`. */
export async function checkInput(input: unknown, source: ImageSourceOptions & { maxPixels: number }): Promise<void> {
  const problems: InputProblem[] = [];
  try {
    resolveInput(input);
  } catch (error) {
    if (!(error instanceof InputValidationError)) throw error;
    problems.push(...error.problems);
  }
  if (input !== null && typeof input === 'object' && !Array.isArray(input)) {
    const values = input as Record<string, unknown>;
    for (const name of IMAGE_INPUTS) {
      const value = values[name];
      if (typeof value !== 'string' || !value.startsWith('data:') || problems.some((p) => p.input === name)) continue;
      const problem = await imageProblem(name, value, source);
      if (problem !== undefined) problems.push(problem);
    }
  }
  if (problems.length > 0) throw new InputValidationError(problems);
}
