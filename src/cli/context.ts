import type { Environment } from '../config.js';

/** What a CLI command may use of its process: output streams, environment, folder and Ctrl-C. */
export interface CliContext {
  out(text: string): void;
  err(text: string): void;
  env: Environment;
  cwd: string;
  /** Whether stderr is a terminal (progress bars redraw in place there). */
  errIsTTY: boolean;
  onInterrupt(handler: () => void): void;
  offInterrupt(handler: () => void): void;
}

/** The context of the running process. */
export function processContext(out: (text: string) => void, err: (text: string) => void): CliContext {
  return {
    out,
    err,
    env: process.env,
    cwd: process.cwd(),
    errIsTTY: process.stderr.isTTY === true,
    onInterrupt: (handler) => process.on('SIGINT', handler),
    offInterrupt: (handler) => process.off('SIGINT', handler),
  };
}
