/**
 * `flux-lora serve`: the HTTP server (src/server/) from the command line. Logs are pino JSON
 * lines on stdout; SIGTERM, SIGINT and POST /shutdown let accepted predictions finish (up to
 * --shutdown-timeout) before the process exits.
 */
import { parseArgs } from 'node:util';
import { readEnvironment } from '../config.js';
import { DEFAULT_LORA_TIMEOUT_MS } from '../lora/cache-policy.js';
import { DEFAULT_IDLE_TIMEOUT_MS } from '../net/safe-fetch.js';
import { checkAuthPolicy } from '../server/auth.js';
import { DEFAULT_SERVER_OPTIONS, startServer } from '../server/app.js';
import type { CliContext } from './context.js';
import { MODEL_OPTIONS, modelOptionsHelp, modelSettings } from './model-options.js';
import { UsageError } from './usage-error.js';

const D = DEFAULT_SERVER_OPTIONS;

export const SERVE_HELP = `Usage: flux-lora serve [options]

Serves predictions over HTTP: Cog's prediction API at the root (POST /predictions, …) and
the Replicate API subset under /v1 (new Replicate({ baseUrl: "http://HOST:PORT/v1" })).

Options:
  --host <address>            address to bind (default ${D.host}; any other needs --token or --no-auth)
  --port <n>                  port (default $PORT or ${D.port})
${modelOptionsHelp({ loraDir: 'a folder requests may name local LoRA files in (default: $FLUX_LORA_DIR; else none)', disabled: 'requests must then set disable_safety_checker=true' })}
  --model-name <owner/name>   the only model the Replicate API answers to (default: any owner/name)
  --token <token>             require "Authorization: Bearer <token>" (default: $FLUX_LORA_API_TOKEN)
  --no-auth                   serve a non-loopback address without a token
  --upload-url <url>          PUT output files to <url>/<prediction id>/<file> instead of answering data URIs
  --public-url <url>          this server's URL as clients reach it (e.g. https://… behind a TLS proxy);
                              Replicate API outputs then link to files served here
  --queue-size <n>            predictions that may wait behind the running one (default ${D.queueSize})
  --body-limit <MiB>          largest request body (default ${D.bodyLimitBytes / 2 ** 20})
  --data-dir <dir>            where predictions (SQLite) and their outputs are kept across restarts
                              (default: $FLUX_LORA_DATA_DIR, else $XDG_DATA_HOME/flux-lora or ~/.local/share/flux-lora)
  --retention <seconds>       how long finished predictions and their files are kept (default ${D.retentionMs / 1000})
  --max-retained <n>          finished predictions kept at most (default ${D.maxRetained})
  --max-retained-size <MiB>   output files of finished predictions kept at most (default ${D.maxRetainedBytes / 2 ** 20})
  --shutdown-timeout <s>      time accepted predictions get to finish on shutdown (default ${D.shutdownTimeoutMs / 1000})
  --allow-private-networks    let image and LoRA URLs reach loopback and private addresses
  --fetch-idle-timeout <s>    an image or LoRA download that sends no byte this long fails (default ${DEFAULT_IDLE_TIMEOUT_MS / 1000})
  --lora-timeout <s>          time cap of one LoRA download (default ${DEFAULT_LORA_TIMEOUT_MS / 1000})
  --log-level <level>         fatal, error, warn, info, debug, trace or silent (default info)
  -h, --help                  show this help

Environment:
  WEBHOOK_AUTH_TOKEN          sent as "Authorization: Bearer <token>" with every webhook
`;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function parse(args: string[]) {
  const text = { type: 'string' } as const;
  try {
    return parseArgs({
      args,
      options: {
        host: text,
        port: text,
        ...MODEL_OPTIONS,
        'model-name': text,
        token: text,
        'no-auth': { type: 'boolean' },
        'upload-url': text,
        'public-url': text,
        'queue-size': text,
        'body-limit': text,
        'data-dir': text,
        retention: text,
        'max-retained': text,
        'max-retained-size': text,
        'shutdown-timeout': text,
        'allow-private-networks': { type: 'boolean' },
        'fetch-idle-timeout': text,
        'lora-timeout': text,
        'log-level': text,
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    throw new UsageError(`serve: ${(error as Error).message}`);
  }
}

/** A number option: absent → the default; otherwise it must be a number ≥ min (an integer where asked). */
function numberOption(name: string, text: string | undefined, fallback: number, { min = 0, integer = false } = {}): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new UsageError(`serve: --${name} must be ${integer ? 'an integer' : 'a number'} of at least ${min}, got "${text}"`);
  }
  return value;
}

function urlOption(name: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!/^https?:\/\/[^/]/i.test(text) || !URL.canParse(text)) throw new UsageError(`serve: --${name} must be an http(s) URL, got "${text}"`);
  return text;
}

export async function serveCommand(args: string[], context: CliContext, version: string): Promise<number> {
  const values = parse(args);
  if (values.help) {
    context.out(SERVE_HELP);
    return 0;
  }
  const host = values.host ?? D.host;
  const environment = readEnvironment(context.env);
  const auth = { token: values.token ?? environment.apiToken, disabled: values['no-auth'] === true };
  try {
    checkAuthPolicy(host, auth);
  } catch (error) {
    throw new UsageError(`serve: ${(error as Error).message}`);
  }
  const modelName = values['model-name'];
  if (modelName !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(modelName))
    throw new UsageError(`serve: --model-name must look like owner/name, got "${modelName}"`);
  const level = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`serve: --log-level must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  const settings = modelSettings('serve', values, context.env, null);
  const idleTimeoutMs = numberOption('fetch-idle-timeout', values['fetch-idle-timeout'], DEFAULT_IDLE_TIMEOUT_MS / 1000, { min: 0.001 }) * 1000;
  const loraTimeoutMs = numberOption('lora-timeout', values['lora-timeout'], DEFAULT_LORA_TIMEOUT_MS / 1000, { min: 0.001 }) * 1000;
  const server = await startServer({
    host,
    port: numberOption('port', values.port ?? environment.port, D.port, { integer: true, min: 0 }),
    version,
    ...settings,
    imageSource: { idleTimeoutMs },
    loraCache: { ...settings.loraCache, idleTimeoutMs, timeoutMs: loraTimeoutMs },
    modelName,
    uploadUrl: urlOption('upload-url', values['upload-url']),
    publicUrl: urlOption('public-url', values['public-url']),
    auth,
    queueSize: numberOption('queue-size', values['queue-size'], D.queueSize, { integer: true }),
    bodyLimitBytes: Math.round(numberOption('body-limit', values['body-limit'], D.bodyLimitBytes / 2 ** 20, { min: 0.001 }) * 2 ** 20),
    requestTimeoutMs: D.requestTimeoutMs,
    retentionMs: numberOption('retention', values.retention, D.retentionMs / 1000, { min: 1 }) * 1000,
    maxRetained: numberOption('max-retained', values['max-retained'], D.maxRetained, { integer: true }),
    maxRetainedBytes: Math.round(numberOption('max-retained-size', values['max-retained-size'], D.maxRetainedBytes / 2 ** 20) * 2 ** 20),
    dataDir: values['data-dir'] ?? environment.dataDir,
    shutdownTimeoutMs: numberOption('shutdown-timeout', values['shutdown-timeout'], D.shutdownTimeoutMs / 1000) * 1000,
    allowPrivateNetworks: values['allow-private-networks'] === true,
    webhooks: { token: environment.webhookToken },
    logger: { level, stream: { write: (line) => context.out(line) } },
  });
  const stop = () => void server.shutdown();
  context.onInterrupt(stop);
  process.once('SIGTERM', stop);
  try {
    await server.closed;
  } finally {
    context.offInterrupt(stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}
