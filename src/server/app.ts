/**
 * `flux-lora serve`: the Fastify server with Cog's contract at the root and the Replicate API
 * subset under /v1, in front of one predictor. Setup (the predictor) starts with the server,
 * so /health-check says STARTING until it is done. Hardened: body size limit, JSON nesting
 * limit, request and header timeouts, errors without stack traces, pino logs.
 */
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { DEFAULT_MAX_PIXELS } from '../images/decode.js';
import { DEFAULT_IMAGE_SOURCE, type ImageSourceOptions } from '../images/source.js';
import type { PredictorOptions } from '../predictor/predictor.js';
import type { PredictionBackend } from './backend.js';
import { checkAuthPolicy, registerAuth, type AuthOptions } from './auth.js';
import type { ServerContext } from './context.js';
import { registerErrorHandling, sendError } from './errors.js';
import { registerJsonBody } from './json-body.js';
import { cogRoutes } from './routes/cog.js';
import { publicRoutes } from './routes/public.js';
import { replicateRoutes } from './routes/replicate.js';
import { webRoutes } from './routes/web.js';
import { PredictionJournal } from './journal.js';
import { PredictionService } from './service.js';
import { webhookView } from './views.js';
import { DEFAULT_WEBHOOK_OPTIONS, type WebhookOptions } from './webhooks.js';

export interface ServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  version: string;
  /** FLUX.1 weights; absent: the built-in tiny model. */
  modelDir?: string;
  cacheDir?: string;
  memoryBudgetBytes?: number;
  deviceMemoryBudgetBytes?: number;
  /** Which execution provider each component runs on (default: the CPU). */
  devices?: PredictorOptions['devices'];
  /** The safety checker pair (default: the model folder's), or 'disabled' for the whole server. */
  safety?: PredictorOptions['safety'];
  /** Limits of image inputs fetched from URLs or sent inline (default DEFAULT_IMAGE_SOURCE and DEFAULT_MAX_PIXELS). */
  imageSource?: Partial<Pick<ImageSourceOptions, 'maxBytes' | 'timeoutMs' | 'idleTimeoutMs'>> & { maxPixels?: number };
  /** LoRA cache settings; local LoRA paths are refused unless `localRoot` names a folder. */
  loraCache?: PredictorOptions['loraCache'];
  modelName?: string;
  uploadUrl?: string;
  publicUrl?: string;
  auth: AuthOptions;
  /** Predictions that may wait behind the running one. */
  queueSize: number;
  bodyLimitBytes: number;
  /** Time to receive a whole request (headers and body); slower clients get 408. */
  requestTimeoutMs: number;
  /** How long finished predictions (and their files) are kept, how many at most, and how many bytes of files. */
  retentionMs: number;
  maxRetained: number;
  maxRetainedBytes?: number;
  /**
   * Where predictions and their outputs are saved (SQLite and files), so that a restarted server
   * answers for them and runs those that were waiting; absent: kept in memory only.
   */
  dataDir?: string;
  /** How long a shutdown lets accepted predictions finish before canceling them. */
  shutdownTimeoutMs: number;
  /** Let image and LoRA URLs reach loopback/private addresses. */
  allowPrivateNetworks: boolean;
  /** Webhook delivery settings (token: Cog's WEBHOOK_AUTH_TOKEN). */
  webhooks?: Partial<Omit<WebhookOptions, 'userAgent'>>;
  /** pino settings; `stream` receives the JSON lines (default stdout). */
  logger: { level: string; stream?: { write(line: string): void } };
}

export const DEFAULT_SERVER_OPTIONS = {
  host: '127.0.0.1',
  port: 5000,
  queueSize: 64,
  bodyLimitBytes: 100 * 1024 * 1024,
  requestTimeoutMs: 60_000,
  retentionMs: 60 * 60_000,
  maxRetained: 200,
  maxRetainedBytes: 10 * 2 ** 30,
  shutdownTimeoutMs: 30_000,
  allowPrivateNetworks: false,
} as const;

/** JSON bodies nested deeper than this are refused (requests need 4 levels). */
const MAX_JSON_DEPTH = 32;

/** The settings of the HTTP layer alone (an API node of a scaled deployment has only these). */
export type HttpOptions = Pick<
  ServerOptions,
  'host' | 'port' | 'version' | 'modelName' | 'uploadUrl' | 'publicUrl' | 'auth' | 'bodyLimitBytes' | 'requestTimeoutMs' | 'shutdownTimeoutMs' | 'logger'
>;

export interface HttpServer<B extends PredictionBackend> {
  /** The address it listens on, e.g. http://127.0.0.1:5000. */
  url: string;
  app: FastifyInstance;
  service: B;
  /** Finishes accepted predictions (up to the shutdown deadline) and closes; idempotent. */
  shutdown(): Promise<void>;
  /** Resolves once the server has shut down (POST /shutdown, a signal, or shutdown()). */
  closed: Promise<void>;
}

export type FluxServer = HttpServer<PredictionService>;

/** The single server: the HTTP API in front of this process's own predictor (and its engine process). */
export async function startServer(options: ServerOptions): Promise<FluxServer> {
  checkAuthPolicy(options.host, options.auth);
  const journal = options.dataDir === undefined ? undefined : new PredictionJournal(options.dataDir);
  const workDir = journal?.outputsDir ?? (await mkdtemp(join(tmpdir(), 'flux-lora-serve-')));
  return startHttpServer(
    options,
    (log) =>
      new PredictionService({
        predictor: {
          modelDir: options.modelDir,
          cacheDir: options.cacheDir,
          memoryBudgetBytes: options.memoryBudgetBytes,
          deviceMemoryBudgetBytes: options.deviceMemoryBudgetBytes,
          devices: options.devices,
          safety: options.safety,
          imageSource: {
            ...DEFAULT_IMAGE_SOURCE,
            maxPixels: DEFAULT_MAX_PIXELS,
            ...options.imageSource,
            allowLocalFiles: false,
            allowPrivateNetworks: options.allowPrivateNetworks,
          },
          loraCache: { localRoot: null, ...options.loraCache, allowPrivateNetworks: options.allowPrivateNetworks },
        },
        queueSize: options.queueSize,
        retention: { retentionMs: options.retentionMs, maxRetained: options.maxRetained, maxRetainedBytes: options.maxRetainedBytes },
        workDir,
        journal,
        webhooks: { ...DEFAULT_WEBHOOK_OPTIONS, ...options.webhooks, userAgent: `flux-lora/${options.version}` },
        log,
        render: webhookView,
      }),
  );
}

/** Serves the HTTP API in front of `backend` (made with the server's logger). */
export async function startHttpServer<B extends PredictionBackend>(options: HttpOptions, backend: (log: FastifyBaseLogger) => B): Promise<HttpServer<B>> {
  checkAuthPolicy(options.host, options.auth);
  const app = Fastify({
    logger: options.logger,
    bodyLimit: options.bodyLimitBytes,
    // Slow clients: the whole request within requestTimeoutMs (408), checked every second.
    serverFactory: (handler) =>
      createServer(
        { requestTimeout: options.requestTimeoutMs, headersTimeout: Math.min(options.requestTimeoutMs, 20_000), connectionsCheckingInterval: 1000 },
        handler,
      ),
    routerOptions: { maxParamLength: 256 },
    // Malformed URLs and over-long path parameters, refused by the router before any route.
    frameworkErrors: (error, request, reply) => {
      sendError(request, reply, error.statusCode ?? 400, error.message);
    },
    // Ajv for envelopes: no type coercion, every problem reported, `nullable` understood.
    ajv: { customOptions: { coerceTypes: false, allErrors: true, removeAdditional: false } },
  });
  const service = backend(app.log);

  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const shutdown = () => {
    closing ??= (async () => {
      app.log.info('shutting down: finishing accepted predictions');
      await service.shutdown(options.shutdownTimeoutMs);
      await app.close();
      resolveClosed();
    })();
    return closing;
  };
  const context: ServerContext = {
    service,
    version: options.version,
    uploadUrl: options.uploadUrl,
    publicUrl: options.publicUrl?.replace(/\/+$/, ''),
    modelName: options.modelName,
    shutdown: () => void shutdown(),
  };

  registerJsonBody(app, MAX_JSON_DEPTH);
  registerErrorHandling(app);
  if (options.auth.token !== undefined) registerAuth(app, options.auth.token);
  cogRoutes(app, context);
  replicateRoutes(app, context);
  publicRoutes(app, context);
  webRoutes(app);

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await service.shutdown(0);
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return { url: `http://${host}:${port}`, app, service, shutdown, closed };
}
