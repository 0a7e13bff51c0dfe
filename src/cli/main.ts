import { createRequire } from 'node:module';
import { evalCommand } from './eval-command.js';
import { UsageError } from './usage-error.js';

const HELP = `Usage: flux-lora <command> [options]

Self-hosted FLUX.1 text-to-image with LoRAs, on onnxruntime.

Commands:
  eval <component>   evaluate one model component on a golden case file (see flux-lora eval --help)

Options:
  -h, --help         show this help
  -v, --version      print the version
`;

function version(): string {
  const require = createRequire(import.meta.url);
  return (require('../../package.json') as { version: string }).version;
}

type Print = (text: string) => void;

/** Runs the CLI and returns the process exit code (0 ok, 1 failure, 2 usage error). */
export async function main(argv: string[], out: Print, err: Print): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      out(HELP);
    } else if (command === '-v' || command === '--version') {
      out(`${version()}\n`);
    } else if (command === 'eval') {
      await evalCommand(rest, out);
    } else {
      throw new UsageError(`unknown command "${command}"; see flux-lora --help`);
    }
    return 0;
  } catch (error) {
    err(`flux-lora: ${(error as Error).message}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}
