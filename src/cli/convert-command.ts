/**
 * `flux-lora convert-lora <input> <output> --to kohya|peft`: rewrites a LoRA file in another
 * format, exactly (src/lora/convert.ts). Module names and widths come from the model the LoRA is
 * for: its transformer's and CLIP text encoder's configs (headers only; nothing is loaded).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BUILTIN_ASSETS, builtinLoraFolder } from '../builtin/tiny-model.js';
import { readEnvironment } from '../config.js';
import { builtinLoraFile } from '../lora/cache-policy.js';
import { CONVERT_FORMATS, convertLoraFile, type ConvertFormat, type ConvertTargets } from '../lora/convert.js';
import { ClipLoraTargets, FluxLoraTargets } from '../lora/flux-targets.js';
import { LoraSourceError } from '../lora/sources.js';
import { openFluxCheckpoint } from '../models/flux/checkpoint.js';
import { CLIP_KIND } from '../models/text/clip-text.js';
import { openTextEncoderCheckpoint } from '../models/text/checkpoint.js';
import { resolveModelAssets } from '../predictor/assets.js';
import type { CliContext } from './context.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const CONVERT_HELP = `Usage: flux-lora convert-lora <input.safetensors> <output.safetensors> --to kohya|peft [options]
       flux-lora convert-lora builtin:tok tok-kohya.safetensors --to kohya

Rewrites a FLUX.1 LoRA (any format flux-lora loads: kohya, diffusers/PEFT as ai-toolkit saves it,
BFL, XLabs, mixed) in another format. The conversion is exact: every linear of the model keeps its
update (alpha/rank)·up·down. kohya fuses q, k, v (and a single block's MLP input) into one module
with a block-diagonal up matrix; PEFT splits them again. Text-encoder (CLIP) modules are renamed too.
The input may be a built-in demo LoRA (builtin:tok).

Options:
  --to <format>        kohya (lora_unet_…/lora_te1_… keys) or peft (transformer.…/text_encoder.… keys)
  --model-dir <dir>    the FLUX.1 weights the LoRA is for, which give the module names and widths
                       (default: $FLUX_MODEL_DIR; with neither, the built-in demo model)
  --force              replace the output file when it exists
  -h, --help           show this help
`;

function parse(args: string[]) {
  return parseCommandLine('convert-lora', () =>
    parseArgs({
      args,
      allowPositionals: true,
      options: { to: { type: 'string' }, 'model-dir': { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }),
  );
}

/** The transformer (dev's when both are there) and CLIP text encoder of a model folder, as LoRA targets. */
export async function modelTargets(dir: string): Promise<ConvertTargets> {
  const { pipelines } = resolveModelAssets(dir);
  const pipeline = pipelines.dev ?? pipelines.schnell;
  if (pipeline === undefined) throw new UsageError(`convert-lora: ${dir} holds no FLUX.1 pipeline`);
  const [flux, clip] = await Promise.all([openFluxCheckpoint(pipeline.transformer), openTextEncoderCheckpoint(pipeline.clip, CLIP_KIND)]);
  return { transformer: new FluxLoraTargets(flux.config), clip: new ClipLoraTargets(clip.config) };
}

/** The shipped file of built-in LoRA `value` (builtin:<name>). */
function builtinInput(value: string): string {
  try {
    return builtinLoraFile(builtinLoraFolder(BUILTIN_ASSETS), 'input', value, value.slice('builtin:'.length));
  } catch (error) {
    throw error instanceof LoraSourceError ? new UsageError(`convert-lora: ${error.detail}`) : error;
  }
}

export async function convertCommand(args: string[], context: CliContext): Promise<void> {
  const { values, positionals } = parse(args);
  if (values.help) {
    context.out(CONVERT_HELP);
    return;
  }
  const [input, output, ...extra] = positionals;
  if (input === undefined || output === undefined) throw new UsageError('convert-lora: give an input and an output file; see flux-lora convert-lora --help');
  if (extra.length > 0) throw new UsageError(`convert-lora: unexpected argument "${extra[0]}"`);
  const format = values.to;
  if (format === undefined || !CONVERT_FORMATS.includes(format as ConvertFormat)) {
    throw new UsageError(`convert-lora: --to must be one of ${CONVERT_FORMATS.join(', ')}, got ${format === undefined ? 'nothing' : `"${format}"`}`);
  }
  const modelDir = values['model-dir'] ?? readEnvironment(context.env).modelDir ?? BUILTIN_ASSETS;
  const from = input.startsWith('builtin:') ? builtinInput(input) : resolve(context.cwd, input);
  const to = resolve(context.cwd, output);
  const report = await convertLoraFile(from, to, format as ConvertFormat, await modelTargets(resolve(context.cwd, modelDir)), values.force === true);
  context.out(
    `Wrote ${to} (${format} format, from ${report.from} format): ${report.transformerModules} transformer modules, ${report.clipModules} text-encoder modules\n`,
  );
}
