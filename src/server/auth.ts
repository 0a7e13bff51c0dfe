/**
 * Bearer-token authentication. With a token configured, every route not marked public needs
 * `Authorization: Bearer <token>`; the public ones are the health check, the discovery
 * document, the schema, and the capability URLs (output files, SSE streams) whose unguessable
 * key is the credential, since the Replicate client fetches those without a token.
 * Without a token only a loopback address may be bound, unless auth is explicitly disabled.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { HttpError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without the bearer token. */
    public?: boolean;
  }
}

export interface AuthOptions {
  token?: string;
  /** Serve without a token on a non-loopback address (the operator's explicit choice). */
  disabled?: boolean;
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Refuses a configuration that would serve predictions to the network without a token. */
export function checkAuthPolicy(host: string, auth: AuthOptions): void {
  if (auth.token === undefined && auth.disabled !== true && !isLoopback(host)) {
    throw new Error(`binding ${host} (not loopback) needs an API token (--token or FLUX_LORA_API_TOKEN), or --no-auth to serve without one`);
  }
}

const digest = (text: string) => createHash('sha256').update(text).digest();

export function registerAuth(app: FastifyInstance, token: string): void {
  const expected = digest(token);
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config.public === true) return;
    const given = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1];
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      reply.header('WWW-Authenticate', 'Bearer');
      throw new HttpError(401, 'a valid API token is required: send "Authorization: Bearer <token>"');
    }
  });
}
