import { parseArgs } from 'node:util';
import { findEvaluator, listEvaluators } from '../eval/registry.js';
import { UsageError } from './usage-error.js';

export function evalHelp(): string {
  const components = listEvaluators();
  const list =
    components.length === 0
      ? '  (none registered in this build)'
      : components.map((e) => `  ${e.component.padEnd(16)} ${e.summary}`).join('\n');
  return `Usage: flux-lora eval <component> --model <file|folder> --case <case.safetensors> --out <out.safetensors>

Evaluates one model component on a golden case file and writes its outputs.

Components:
${list}

Options:
  --model <path>   checkpoint file or folder of the component
  --case <path>    golden case file with inputs named case<k>.<name>
  --out <path>     output file (.safetensors)
  -h, --help       show this help
`;
}

function parse(args: string[]) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        case: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new UsageError(`eval: ${(error as Error).message}`);
  }
}

export async function evalCommand(args: string[], print: (text: string) => void): Promise<void> {
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
    throw new UsageError(
      `eval: unknown component "${component}" (available: ${known.length === 0 ? 'none in this build' : known.join(', ')})`,
    );
  }
  const { model, case: casePath, out: outPath } = values;
  if (model === undefined || casePath === undefined || outPath === undefined) {
    const missing = Object.entries({ model, case: casePath, out: outPath }).filter(([, v]) => v === undefined);
    throw new UsageError(`eval ${component}: missing ${missing.map(([k]) => `--${k}`).join(', ')}`);
  }
  await evaluator.evaluate({ model, casePath, outPath });
}
