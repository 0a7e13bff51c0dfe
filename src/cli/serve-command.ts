/**
 * `flux-lora serve`: the HTTP server (src/server/) from the command line, either the single
 * server (its own predictor, predictions in the data folder) or, with --redis, a stateless API
 * node of a scaled deployment (src/scale/; `flux-lora worker` runs the models). Logs are pino
 * JSON lines on stdout; SIGTERM, SIGINT and POST /shutdown let accepted predictions finish (up
 * to --shutdown-timeout) before the process exits.
 */
import { readEnvironment } from '../config.js';
import { ClusterService } from '../scale/cluster-service.js';
import { checkAuthPolicy } from '../server/auth.js';
import { DEFAULT_SERVER_OPTIONS, startHttpServer, startServer, type HttpOptions } from '../server/app.js';
import { DEFAULT_WEBHOOK_OPTIONS } from '../server/webhooks.js';
import type { CliContext } from './context.js';
import { MODEL_OPTIONS, modelOptionsHelp, modelSettings } from './model-options.js';
import {
  FETCH_HELP,
  FETCH_OPTIONS,
  fetchSettings,
  parseOptions,
  logLevelOption,
  modelNameOption,
  numberOption,
  redisOption,
  urlOption,
} from './option-values.js';
import { UsageError } from './usage-error.js';

const D = DEFAULT_SERVER_OPTIONS;

export const SERVE_HELP = `Usage: flux-lora serve [options]

Serves predictions over HTTP: Cog's prediction API at the root (POST /predictions, …) and
the Replicate API subset under /v1 (new Replicate({ baseUrl: "http://HOST:PORT/v1" })).

Options:
  --host <address>            address to bind (default ${D.host}; any other needs --token or --no-auth)
  --port <n>                  port (default $PORT or ${D.port})
  --redis <url>               run as an API node of a scaled deployment: predictions in this Redis
                              (redis://host:port), run by \`flux-lora worker\` processes; the model
                              and data folder options then belong to the workers (default: $FLUX_LORA_REDIS_URL)
${modelOptionsHelp({ loraDir: 'a folder requests may name local LoRA files in (default: $FLUX_LORA_DIR; else none)', disabled: 'requests must then set disable_safety_checker=true' })}
  --model-name <owner/name>   the only model the Replicate API answers to (default: any owner/name);
                              with --redis, the model of requests that name none
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
${FETCH_HELP}
  -h, --help                  show this help

Environment:
  WEBHOOK_AUTH_TOKEN          sent as "Authorization: Bearer <token>" with every webhook
`;

const text = { type: 'string' } as const;

/** Every option of `flux-lora serve` (the compose example is checked against them). */
export const SERVE_OPTIONS = {
  host: text,
  port: text,
  redis: text,
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
  ...FETCH_OPTIONS,
} as const;

function parse(args: string[]) {
  return parseOptions('serve', args, SERVE_OPTIONS);
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
  const command = 'serve';
  const num = (name: string, text: string | undefined, fallback: number, rule?: { min?: number; integer?: boolean }) =>
    numberOption(command, name, text, fallback, rule);
  const modelName = modelNameOption(command, values['model-name']);
  const redisUrl = redisOption(command, values.redis ?? environment.redisUrl);
  const singleServerOnly = [...Object.keys(MODEL_OPTIONS), 'data-dir', 'max-retained', 'max-retained-size'].filter((name) => name in values);
  if (redisUrl !== undefined && singleServerOnly.length > 0) {
    throw new UsageError(`serve: --${singleServerOnly[0]} has no effect on an API node (--redis): the workers load the models and Redis keeps the predictions`);
  }
  const level = logLevelOption(command, values['log-level']);
  const { idleTimeoutMs, loraTimeoutMs, allowPrivateNetworks, imageSource } = fetchSettings(command, values);
  const http: HttpOptions = {
    host,
    port: num('port', values.port ?? environment.port, D.port, { integer: true, min: 0 }),
    version,
    modelName,
    uploadUrl: urlOption(command, 'upload-url', values['upload-url']),
    publicUrl: urlOption(command, 'public-url', values['public-url']),
    auth,
    bodyLimitBytes: Math.round(num('body-limit', values['body-limit'], D.bodyLimitBytes / 2 ** 20, { min: 0.001 }) * 2 ** 20),
    requestTimeoutMs: D.requestTimeoutMs,
    shutdownTimeoutMs: num('shutdown-timeout', values['shutdown-timeout'], D.shutdownTimeoutMs / 1000) * 1000,
    logger: { level, stream: { write: (line) => context.out(line) } },
  };
  const queueSize = num('queue-size', values['queue-size'], D.queueSize, { integer: true });
  const retentionMs = num('retention', values.retention, D.retentionMs / 1000, { min: 1 }) * 1000;
  const webhooks = { token: environment.webhookToken };
  const settings = modelSettings(command, values, context.env, null);
  const server =
    redisUrl === undefined
      ? await startServer({
          ...http,
          ...settings,
          imageSource: { idleTimeoutMs },
          loraCache: { ...settings.loraCache, idleTimeoutMs, timeoutMs: loraTimeoutMs },
          queueSize,
          retentionMs,
          maxRetained: num('max-retained', values['max-retained'], D.maxRetained, { integer: true }),
          maxRetainedBytes: Math.round(num('max-retained-size', values['max-retained-size'], D.maxRetainedBytes / 2 ** 20) * 2 ** 20),
          dataDir: values['data-dir'] ?? environment.dataDir,
          allowPrivateNetworks,
          webhooks,
        })
      : await startHttpServer(
          http,
          (log) =>
            new ClusterService({
              redisUrl,
              modelName,
              queueSize,
              retentionMs,
              imageSource,
              webhooks: { ...DEFAULT_WEBHOOK_OPTIONS, ...webhooks, userAgent: `flux-lora/${version}` },
              log,
            }),
        );
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
