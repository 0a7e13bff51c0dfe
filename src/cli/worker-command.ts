/**
 * `flux-lora worker`: one engine of a scaled deployment (src/scale/worker.ts), taking the jobs
 * of one model from Redis. Logs are JSON lines on stdout; SIGTERM and SIGINT drain it (the
 * running job finishes, no other is taken) before the process exits 0.
 */
import { readEnvironment } from '../config.js';
import { startWorker } from '../scale/worker.js';
import type { CliContext } from './context.js';
import { MODEL_OPTIONS, modelOptionsHelp, modelSettings } from './model-options.js';
import { FETCH_HELP, FETCH_OPTIONS, fetchSettings, parseOptions, logLevelOption, modelNameOption, redisOption } from './option-values.js';
import { UsageError } from './usage-error.js';

export const WORKER_HELP = `Usage: flux-lora worker --redis <url> --model-name <owner/name> [options]

Runs predictions for the API nodes of a scaled deployment (flux-lora serve --redis <url>):
one engine, one prediction at a time, taking the jobs of its model from Redis. Run one per
machine or GPU; every worker of one --model-name must hold the same weights.

Options:
  --redis <url>               the deployment's Redis, redis://host:port (default: $FLUX_LORA_REDIS_URL)
  --model-name <owner/name>   the model it serves: requests for it are routed here
${modelOptionsHelp({ loraDir: 'a folder requests may name local LoRA files in (default: $FLUX_LORA_DIR; else none)', disabled: 'requests must then set disable_safety_checker=true' })}
${FETCH_HELP}
  -h, --help                  show this help
`;

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

const text = { type: 'string' } as const;

/** Every option of `flux-lora worker` (the compose example is checked against them). */
export const WORKER_OPTIONS = {
  redis: text,
  'model-name': text,
  ...MODEL_OPTIONS,
  ...FETCH_OPTIONS,
} as const;

function parse(args: string[]) {
  return parseOptions('worker', args, WORKER_OPTIONS);
}

export async function workerCommand(args: string[], context: CliContext): Promise<number> {
  const values = parse(args);
  if (values.help) {
    context.out(WORKER_HELP);
    return 0;
  }
  const command = 'worker';
  const redisUrl = redisOption(command, values.redis ?? readEnvironment(context.env).redisUrl);
  if (redisUrl === undefined) throw new UsageError('worker: --redis <url> is required (or FLUX_LORA_REDIS_URL)');
  const model = modelNameOption(command, values['model-name']);
  if (model === undefined) throw new UsageError('worker: --model-name <owner/name> is required: requests for that model are routed to this worker');
  const level = LEVELS[logLevelOption(command, values['log-level'])] as number;
  const { idleTimeoutMs, loraTimeoutMs, allowPrivateNetworks, imageSource } = fetchSettings(command, values);
  const settings = modelSettings(command, values, context.env, null);
  const worker = await startWorker({
    redisUrl,
    model,
    predictor: {
      ...settings,
      imageSource,
      loraCache: { ...settings.loraCache, idleTimeoutMs, timeoutMs: loraTimeoutMs, allowPrivateNetworks },
    },
    log: (fields, msg) => {
      if (level <= LEVELS.info!) context.out(`${JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, ...fields, msg })}\n`);
    },
  });
  await new Promise<void>((resolve) => {
    const stop = () => {
      context.offInterrupt(stop);
      process.off('SIGTERM', stop);
      void worker.drain().then(resolve);
    };
    context.onInterrupt(stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
