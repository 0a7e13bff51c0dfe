/**
 * `flux-lora predict -i name=value …`: one prediction from the command line, like
 * `cog predict`. Values are typed by the input schema (a value that does not parse is passed
 * on as text, so validation names the input); `image=@photo.png` reads a local file.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_IMAGE_SOURCE } from '../images/source.js';
import { InputValidationError } from '../predictor/inputs.js';
import { inputTableText } from '../predictor/input-table.js';
import { Predictor, type PredictionResult, type Progress } from '../predictor/predictor.js';
import type { CliContext } from './context.js';
import { parseInputArgument } from './input-arguments.js';
import { MODEL_OPTIONS, modelOptionsHelp, modelSettings } from './model-options.js';
import { parseCommandLine, UsageError } from './usage-error.js';
import { describeWorld } from '../demo-world/vocabulary.js';

export const PREDICT_HELP = `Usage: flux-lora predict -i <name>=<value> [-i ...] [options]

Runs one prediction and writes out-<i>.<ext> files; for example
-i prompt="a photo of TOK" -i num_outputs=2 -i seed=7. The inputs are listed below.

Options:
  -i, --input <name>=<value>  an input (repeatable); image, mask and every LoRA input (loras items too) read
                              local files given as @path or as the path of an existing file: image=@photo.png,
                              replicate_weights=lora.safetensors, loras='[{"weights":"@style.safetensors","scale":0.8}]'
  -o, --output-dir <dir>      where the images go (default: the current folder)
${modelOptionsHelp({ loraDir: 'the only folder local LoRA files may come from (default: $FLUX_LORA_DIR, else anywhere)', disabled: 'this prediction is not checked' })}
  --json                      print the prediction object instead of the file paths
  -h, --help                  show this help

Inputs (docs/input-table.md has the same table; flux-lora schema prints the JSON Schema):
${inputTableText()}
`;

const BUILTIN_NOTICE =
  'flux-lora: no FLUX weights configured, so this runs the built-in demo model: a tiny FLUX trained on a toy world of one or two ' +
  'flat shapes on a plain background, at an early stage of training (it draws the asked background; objects seldom come out as asked). ' +
  `It knows these words: ${describeWorld()} ` +
  '(e.g. -i prompt="a large red circle on the left and a small blue star on the right on a white background"; TOK: -i replicate_weights=builtin:tok). ' +
  'Point FLUX_MODEL_DIR or --model-dir at FLUX.1-dev / FLUX.1-schnell weights to run the real model.\n';

function parse(args: string[]) {
  return parseCommandLine('predict', () =>
    parseArgs({
      args,
      options: {
        input: { type: 'string', short: 'i', multiple: true },
        'output-dir': { type: 'string', short: 'o' },
        ...MODEL_OPTIONS,
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
}

function progressLine(p: Progress): string {
  const width = 30;
  const filled = Math.round((p.step / p.total) * width);
  const output = p.outputs > 1 ? `output ${p.output + 1}/${p.outputs} ` : '';
  // Steps per second so far and the time the remaining steps of this output take at that rate.
  const perSecond = p.elapsedMs > 0 ? (p.step * 1000) / p.elapsedMs : 0;
  const eta = perSecond > 0 ? ` ETA ${((p.total - p.step) / perSecond).toFixed(1)}s,` : '';
  return `${output}${'█'.repeat(filled)}${'·'.repeat(width - filled)} ${p.step}/${p.total} [${(p.elapsedMs / 1000).toFixed(1)}s,${eta} ${perSecond.toFixed(2)} it/s]`;
}

export async function predictCommand(args: string[], context: CliContext): Promise<number> {
  const { values } = parse(args);
  if (values.help) {
    context.out(PREDICT_HELP);
    return 0;
  }
  const input: Record<string, unknown> = {};
  for (const argument of values.input ?? []) {
    const [name, value] = parseInputArgument(argument, context.cwd);
    if (Object.hasOwn(input, name)) throw new UsageError(`predict: input "${name}" is given more than once`);
    input[name] = value;
  }
  const settings = modelSettings('predict', values, context.env, '/');
  // The CLI's user is the operator: the flag alone turns the checker off for this prediction.
  if (settings.safety === 'disabled') input.disable_safety_checker ??= true;
  const logs: string[] = [];
  const log = (line: string) => {
    logs.push(line);
    context.err(`${line}\n`);
  };
  if (settings.modelDir === undefined) context.err(BUILTIN_NOTICE);
  // The CLI's user is the operator: images (and, unless --lora-dir says otherwise, LoRAs) may be local files.
  const predictor = await Predictor.create({ ...settings, log, imageSource: { ...DEFAULT_IMAGE_SOURCE, allowLocalFiles: true } });
  const controller = new AbortController();
  const stop = () => controller.abort();
  context.onInterrupt(stop);
  const startedAt = new Date().toISOString();
  // A terminal redraws the bar in place; logs and pipes get a line per tenth of the steps.
  const onProgress = (p: Progress) => {
    const line = progressLine(p);
    if (context.errIsTTY) context.err(`\r${line}${p.step === p.total ? '\n' : ''}`);
    else if (p.step === p.total || Math.floor((p.step * 10) / p.total) !== Math.floor(((p.step - 1) * 10) / p.total)) context.err(`${line}\n`);
  };
  let result: PredictionResult;
  try {
    result = await predictor.predict(input, { outputDir: resolve(context.cwd, values['output-dir'] ?? '.'), signal: controller.signal, log, onProgress });
  } catch (error) {
    if (values.json) {
      const detail = error instanceof InputValidationError ? { detail: error.problems } : {};
      context.out(
        `${JSON.stringify({ status: 'failed', input, output: null, error: (error as Error).message, ...detail, logs: logs.join('\n'), started_at: startedAt }, null, 2)}\n`,
      );
      context.err(`flux-lora: ${(error as Error).message}\n`);
      return 1;
    }
    throw error;
  } finally {
    context.offInterrupt(stop);
    await predictor.close();
  }
  log(`Total time: ${result.metrics.predict_time.toFixed(2)}s`);
  if (values.json) {
    const prediction = {
      status: 'succeeded',
      input,
      output: result.files.map((f) => pathToFileURL(f).href),
      logs: logs.join('\n'),
      metrics: { ...result.metrics, seed: result.seed },
      started_at: startedAt,
      completed_at: new Date().toISOString(),
    };
    context.out(`${JSON.stringify(prediction, null, 2)}\n`);
  } else {
    context.out(result.files.map((f) => `${f}\n`).join(''));
  }
  return 0;
}
