/** A flux-lora server on the built-in model over real loopback HTTP, and a local receiver for webhooks and uploads. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { DEFAULT_SERVER_OPTIONS, startServer, type FluxServer, type ServerOptions } from '../../../src/server/app.js';
import { useTempDir } from '../../helpers/temp-dir.js';

/** Small enough to run in a fraction of a second on the built-in model. */
export const SMALL = { prompt: 'a photo of TOK', aspect_ratio: 'custom', width: 256, height: 256, num_inference_steps: 2 } as const;
/** Long enough (~2.5 s) to act on a prediction while it runs, and still let it finish. */
export const LONG = { prompt: 'a photo of TOK' } as const;
/** Far longer (~15 s): for predictions a test cancels, or must still find unfinished a second later. */
export const SLOW = { prompt: 'a photo of TOK', aspect_ratio: 'custom', width: 1440, height: 1440, num_inference_steps: 50 } as const;

/** Starts servers sharing one cache folder (the built-in model is written once per file); all shut down after the file. */
export function useServers(prefix: string): (options?: Partial<ServerOptions>) => Promise<FluxServer & { logs: string[] }> {
  const tmp = useTempDir(prefix);
  const started: FluxServer[] = [];
  afterAll(async () => {
    await Promise.all(started.map((s) => s.shutdown()));
  });
  return async (options = {}) => {
    const logs: string[] = [];
    const server = await startServer({
      ...DEFAULT_SERVER_OPTIONS,
      port: 0,
      version: 'test',
      cacheDir: join(tmp(), 'cache'),
      auth: {},
      logger: { level: 'info', stream: { write: (line) => void logs.push(line) } },
      webhooks: { backoffMs: 20 },
      ...options,
    });
    started.push(server);
    await server.service.whenReady();
    return Object.assign(server, { logs });
  };
}

/** The fields of answers (predictions, errors, health) the tests read. */
export interface Body {
  [field: string]: unknown;
  id: string;
  status: string;
  output: string[] | null;
  error: string | null;
  logs: string;
  input: Record<string, unknown>;
  metrics: Record<string, number> | null;
  urls: { get: string; cancel: string; stream: string };
  detail: string | { loc: (string | number)[]; msg: string; type: string }[];
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON (an empty object when the answer is not JSON). */
  body: Body;
}

function answer(status: number, headers: Headers, text: string): Answer {
  const json = (headers.get('content-type') ?? '').includes('json');
  return { status, headers, text, body: (json ? JSON.parse(text) : {}) as Body };
}

function requestHeaders(body: unknown, headers: Record<string, string>): Record<string, string> {
  return { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers };
}

const bodyText = (body: unknown): string | undefined => (body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));

/** One JSON request over a real socket; the answer's body parsed (or its text when it is not JSON). */
export async function request(url: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: requestHeaders(body, headers) };
  const text = bodyText(body);
  if (text !== undefined) init.body = text;
  const response = await fetch(url, init);
  return answer(response.status, response.headers, await response.text());
}

/**
 * The same request handed to the server's router in-process (Fastify's inject): for checks of
 * envelopes and error shapes, where the transport does not matter.
 */
export async function inject(
  server: FluxServer,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const text = bodyText(body);
  const response = await server.app.inject({ method, url: path, headers: requestHeaders(body, headers), ...(text === undefined ? {} : { payload: text }) });
  const received = new Headers();
  for (const [name, value] of Object.entries(response.headers)) if (value !== undefined) received.set(name, String(value));
  return answer(response.statusCode, received, response.body);
}

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** When it arrived (ms since the epoch). */
  at: number;
  json(): Body;
}

/** A local HTTP server that records every request; `respond` chooses each answer (default 200). */
export async function receiver(respond: (request: Received, response: ServerResponse) => void = (_r, res) => void res.end()) {
  const received: Received[] = [];
  const waiters: (() => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const entry = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        at: Date.now(),
        json: () => JSON.parse(body.toString()) as Body,
      };
      received.push(entry);
      respond(entry, res);
      waiters.splice(0).forEach((w) => w());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  /** Waits until `done(received)` holds (checked after each request). */
  const until = async (done: (all: Received[]) => boolean, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!done(received)) {
      if (Date.now() > deadline) throw new Error(`receiver: condition not met in ${timeoutMs} ms (${received.length} requests)`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return received;
  };
  return { url, received, until };
}

/** Polls the Replicate API until the prediction (created by a request still under way, perhaps) reaches `status` or a terminal one. */
export async function untilStatus(server: { url: string }, id: string, status: string, headers: Record<string, string> = {}): Promise<Answer> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const answer = await request(`${server.url}/v1/predictions/${id}`, 'GET', undefined, headers);
    if (answer.status === 200 && [status, 'succeeded', 'failed', 'canceled'].includes(answer.body.status)) return answer;
    if (answer.status !== 200 && answer.status !== 404) throw new Error(`GET /v1/predictions/${id}: ${answer.status} ${answer.text}`);
    if (Date.now() > deadline) throw new Error(`prediction ${id} did not reach ${status}: ${answer.status} ${answer.text.slice(0, 200)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** Resolves with the server URL once a pino line says it listens. */
export function listening(lines: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = setInterval(() => {
      const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(lines())?.[1];
      if (url !== undefined) {
        clearInterval(check);
        resolve(url);
      } else if (Date.now() - started > 30_000) {
        clearInterval(check);
        reject(new Error(`the server did not start:\n${lines()}`));
      }
    }, 20);
  });
}

/** Waits until /health-check says READY. */
export async function untilHealthy(url: string): Promise<void> {
  while ((await request(`${url}/health-check`, 'GET')).body.status !== 'READY') await new Promise((resolve) => setTimeout(resolve, 20));
}

/**
 * Child processes still running when the test file ends are killed then (registered here, at
 * the file's collection: a hook registered inside a hook or a test would not run).
 */
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** `flux-lora <command> …` from the sources as a child process, its stdout and stderr collected; killed after the file if still running. */
export function spawnCli(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, FLUX_MODEL_DIR: '', ...env },
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal === null ? null : -1))));
  children.add(child);
  return { child, out: () => out, exited };
}

/** A free loopback port (bound and released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
