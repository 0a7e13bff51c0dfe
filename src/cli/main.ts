import { createRequire } from 'node:module';
import { openApiSchemaDocument } from '../predictor/openapi.js';
import { processContext, type CliContext } from './context.js';
import { convertCommand } from './convert-command.js';
import { evalCommand } from './eval-command.js';
import { predictCommand } from './predict-command.js';
import { serveCommand } from './serve-command.js';
import { UsageError } from './usage-error.js';
import { workerCommand } from './worker-command.js';

const HELP = `Usage: flux-lora <command> [options]

Self-hosted FLUX.1 text-to-image with LoRAs, on onnxruntime.

Commands:
  predict            run one prediction: flux-lora predict -i prompt="a photo of TOK" (see flux-lora predict --help)
  serve              serve predictions over HTTP: Cog's API and the Replicate API subset (see flux-lora serve --help)
  worker             run predictions for the API nodes of a scaled deployment on Redis (see flux-lora worker --help)
  schema             print the prediction input and output schemas (OpenAPI; the inputs as a table: predict --help)
  eval <component>   evaluate one model component on a golden case file (see flux-lora eval --help)
  convert-lora       rewrite a LoRA file as kohya or PEFT (diffusers) keys, exactly (see flux-lora convert-lora --help)

Options:
  -h, --help         show this help
  -v, --version      print the version

Environment:
  FLUX_MODEL_DIR        FLUX.1 weights: a diffusers pipeline folder, several, or single files (without it: the built-in tiny model)
  FLUX_LORA_CACHE_DIR   quantized weights and the built-in model (default ~/.cache/flux-lora)
  FLUX_DEVICE           where the models run: cpu (default), webgpu, auto, or per component (see predict --help)
  FLUX_LORA_DATA_DIR    the server's predictions and their outputs (default ~/.local/share/flux-lora)
  FLUX_LORA_REDIS_URL   the Redis of a scaled deployment (serve --redis, worker --redis)
`;

const SCHEMA_HELP = `Usage: flux-lora schema

Prints the prediction input and output schemas as an OpenAPI document (JSON), the way the server
publishes them at /openapi.json. For a readable table of the inputs: flux-lora predict --help.
`;

function version(): string {
  const require = createRequire(import.meta.url);
  return (require('../../package.json') as { version: string }).version;
}

type Print = (text: string) => void;

/** Runs the CLI and returns the process exit code (0 ok, 1 failure, 2 usage error). */
export async function main(argv: string[], out: Print, err: Print, context: Partial<CliContext> = {}): Promise<number> {
  const ctx: CliContext = { ...processContext(out, err), ...context };
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      out(HELP);
    } else if (command === '-v' || command === '--version') {
      out(`${version()}\n`);
    } else if (command === 'predict') {
      return await predictCommand(rest, ctx);
    } else if (command === 'serve') {
      return await serveCommand(rest, ctx, version());
    } else if (command === 'worker') {
      return await workerCommand(rest, ctx);
    } else if (command === 'schema') {
      if (rest.length === 1 && (rest[0] === '-h' || rest[0] === '--help')) out(SCHEMA_HELP);
      else if (rest.length > 0) throw new UsageError(`schema: unexpected argument "${rest[0]}"; see flux-lora schema --help`);
      else out(`${JSON.stringify(openApiSchemaDocument(version()), null, 2)}\n`);
    } else if (command === 'eval') {
      await evalCommand(rest, out, ctx);
    } else if (command === 'convert-lora') {
      await convertCommand(rest, ctx);
    } else {
      throw new UsageError(`unknown command "${command}"; see flux-lora --help`);
    }
    return 0;
  } catch (error) {
    err(`flux-lora: ${(error as Error).message}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}
