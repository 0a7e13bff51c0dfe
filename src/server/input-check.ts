/**
 * What the server checks before it accepts a prediction: the predictor's own input rules
 * (schema, our rules and what this server can serve, every problem named), then what can be checked without the
 * network: images given inline as data URIs (decoded as the predictor decodes them; any
 * scheme but data: and http(s) refused) and the syntax of each LoRA source. Such problems are
 * the caller's, so they are answered 422 even for async requests; URLs are only fetched when
 * the prediction runs, and a failed download is a failed prediction, as in Cog.
 */
import { decodeImage } from '../images/decode.js';
import { ImageInputError } from '../images/errors.js';
import { readImageSource, type ImageSourceOptions } from '../images/source.js';
import { LoraSourceError, parseLoraSource } from '../lora/sources.js';
import { InputValidationError, type InputProblem, type ResolvedInput } from '../predictor/inputs.js';

/** The problem an input's own error describes (its message without the `input "<name>": ` prefix). */
function problemOf(input: string, error: unknown): InputProblem {
  if (!(error instanceof ImageInputError || error instanceof LoraSourceError)) throw error;
  return { input, message: error.message.replace(`input "${input}": `, '') };
}

async function imageProblems(resolved: ResolvedInput, source: ImageSourceOptions & { maxPixels: number }): Promise<InputProblem[]> {
  const problems: InputProblem[] = [];
  for (const name of ['image', 'mask'] as const) {
    const value = resolved[name];
    if (value === undefined || /^https?:\/\//i.test(value)) continue;
    try {
      await decodeImage(name, await readImageSource(name, value, { ...source, allowLocalFiles: false }), source.maxPixels);
    } catch (error) {
      problems.push(problemOf(name, error));
    }
  }
  return problems;
}

function loraProblems(resolved: ResolvedInput): InputProblem[] {
  const problems: InputProblem[] = [];
  for (const lora of resolved.loras) {
    try {
      parseLoraSource(lora.input, lora.source);
    } catch (error) {
      problems.push(problemOf(lora.input, error));
    }
  }
  return problems;
}

/**
 * The inputs as `validate` (the predictor's) resolves them, or an InputValidationError listing
 * every problem (the predictor's first, then those of the LoRA sources and inline images).
 */
export async function checkInput(
  input: unknown,
  validate: (input: unknown) => ResolvedInput,
  source: ImageSourceOptions & { maxPixels: number },
): Promise<ResolvedInput> {
  const resolved = validate(input);
  const problems = [...loraProblems(resolved), ...(await imageProblems(resolved, source))];
  if (problems.length > 0) throw new InputValidationError(problems);
  return resolved;
}
