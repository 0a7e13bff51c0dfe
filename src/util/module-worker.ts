/**
 * Starting a worker thread from a module beside the caller: `<name>.js` when running the built
 * code, `<name>.ts` through tsx's loader when running from the TypeScript sources (tests, tsx).
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** A worker running module `name` of the folder of `callerUrl` (the caller's `import.meta.url`). */
export function startModuleWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  if (callerUrl.endsWith('.ts')) {
    const entry = new URL(`./${name}.ts`, callerUrl).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const code = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(entry)}); });`;
    return new Worker(code, { ...options, eval: true });
  }
  return new Worker(new URL(`./${name}.js`, callerUrl), options);
}
