import { parseArgs } from 'node:util';
import { findEvaluator, listEvaluators } from '../eval/registry.js';
import { readEnvironment, type Environment } from '../config.js';
import { chooseDevices } from '../onnx/device-plan.js';
import { probeWebGpu } from '../onnx/webgpu-probe.js';
import { devicePlan } from './model-options.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export function evalHelp(): string {
  const components = listEvaluators();
  const list = components.length === 0 ? '  (none registered in this build)' : components.map((e) => `  ${e.component.padEnd(16)} ${e.summary}`).join('\n');
  return `Usage: flux-lora eval <component> --model <file|folder> --case <case.safetensors> --out <out.safetensors>

Evaluates one model component on a golden case file and writes its outputs.

Components:
${list}

Options:
  --model <path>   checkpoint file or folder of the component
  --case <path>    golden case file with inputs named case<k>.<name>
  --out <path>     output file (.safetensors)
  --lora <file>[:<scale>]
                   apply a LoRA (repeatable; scale defaults to 1) — transformer components
  --device <choice>
                   cpu, webgpu or auto (default: $FLUX_DEVICE or cpu); a WebGPU adapter that is
                   missing or fails its check falls back to the CPU, saying so on stderr
  -h, --help       show this help
`;
}

function parse(args: string[]) {
  return parseCommandLine('eval', () =>
    parseArgs({
      args,
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        case: { type: 'string' },
        out: { type: 'string' },
        lora: { type: 'string', multiple: true },
        device: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
}

/** `file.safetensors[:scale]`; the scale is the text after the last colon when it is a number. */
function parseLoraArgument(argument: string): { path: string; scale: number } {
  const colon = argument.lastIndexOf(':');
  const tail = colon < 0 ? '' : argument.slice(colon + 1);
  if (colon < 0 || !/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(tail)) return { path: argument, scale: 1 };
  const scale = Number(tail);
  if (argument.slice(0, colon) === '') throw new UsageError(`eval: --lora "${argument}" names no file`);
  return { path: argument.slice(0, colon), scale };
}

export async function evalCommand(args: string[], print: (text: string) => void, context: { env: Environment; err(text: string): void }): Promise<void> {
  const { values, positionals } = parse(args);
  if (values.help) {
    print(evalHelp());
    return;
  }
  const [component, ...extra] = positionals;
  if (component === undefined) throw new UsageError('eval: missing <component>; see flux-lora eval --help');
  if (extra.length > 0) throw new UsageError(`eval: unexpected argument "${extra[0]}"`);
  const evaluator = findEvaluator(component);
  if (evaluator === undefined) {
    const known = listEvaluators().map((e) => e.component);
    throw new UsageError(`eval: unknown component "${component}" (available: ${known.length === 0 ? 'none in this build' : known.join(', ')})`);
  }
  const { model, case: casePath, out: outPath } = values;
  if (model === undefined || casePath === undefined || outPath === undefined) {
    const missing = Object.entries({ model, case: casePath, out: outPath }).filter(([, v]) => v === undefined);
    throw new UsageError(`eval ${component}: missing ${missing.map(([k]) => `--${k}`).join(', ')}`);
  }
  const loras = (values.lora ?? []).map(parseLoraArgument);
  if (loras.length > 0 && !evaluator.acceptsLoras) throw new UsageError(`eval ${component}: --lora is not supported by this component`);
  const { devices, lines } = await chooseDevices(devicePlan(`eval ${component}`, values.device, readEnvironment(context.env).device), probeWebGpu);
  for (const line of lines) context.err(`${line}\n`);
  await evaluator.evaluate({ model, casePath, outPath, loras, devices });
}
