/** Starts a module of this folder as a child process with an IPC channel (the engine, the WebGPU probe). */
import { fork, type ChildProcess } from 'node:child_process';
import { disableEngineTelemetry, engineEnvironment } from '../config.js';

export function forkSibling(module: string, stdio: 'inherit' | 'ignore' = 'inherit'): ChildProcess {
  // onnxruntime reads ORT_DISABLE_TELEMETRY when it loads, from the environment the child inherits.
  disableEngineTelemetry();
  const here = import.meta.url;
  // From TypeScript sources (tests, tsx) the child loads through tsx's loader.
  const fromSources = here.endsWith('.ts');
  const entry = new URL(`./${module}${fromSources ? '.ts' : '.js'}`, here);
  return fork(entry, [], {
    serialization: 'advanced',
    execArgv: fromSources ? ['--import', import.meta.resolve('tsx')] : [],
    stdio: ['ignore', stdio, stdio, 'ipc'],
    env: engineEnvironment(),
  });
}
