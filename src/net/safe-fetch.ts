/**
 * Fetching user-supplied URLs (input images, LoRA files) under the rules of docs/decisions.md:
 * http(s) only; never loopback, private, link-local or metadata addresses unless the
 * operator allows them (IPv6 forms that embed such an IPv4 address included); capped size,
 * time, idle time and redirects. Every hop of a redirect is checked, and the address rule is
 * applied when the connection is made (a custom DNS lookup refuses blocked addresses), so a
 * name that resolves differently the second time (DNS rebinding) cannot slip through.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { open, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { isBlockedAddress } from './address-rules.js';

export class FetchError extends Error {
  constructor(
    readonly url: string,
    detail: string,
    /** The HTTP status, for errors that are an HTTP error answer. */
    readonly status?: number,
  ) {
    super(`${detail} (${redact(url)})`);
    this.name = 'FetchError';
  }
}

/** A host name's addresses, as `dns.lookup(name, { all: true })` gives them. */
export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

export interface SafeFetchOptions {
  /** Allow loopback/private/link-local targets (tests, trusted networks). */
  allowPrivateNetworks?: boolean;
  maxBytes: number;
  /** Time cap for the whole request, body included. */
  timeoutMs: number;
  /** Longest wait for a byte (connecting, the answer, each part of the body); default 30 s. */
  idleTimeoutMs?: number;
  maxRedirects?: number;
  headers?: Record<string, string>;
  /** Cancels the request (the caller's cancellation; the time caps are separate). */
  signal?: AbortSignal;
  /** Resolves host names (default: the system resolver, as `dns.lookup`). */
  resolve?: Resolver;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export interface SafeDownloadResult {
  /** The URL the body came from, after redirects. */
  url: string;
  bytes: number;
  contentType: string | undefined;
}

/** Query strings (signed URLs) and credentials are not shown in messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

const NOT_ALLOWED = 'a private, loopback or link-local address, which is not allowed';

class BlockedAddressError extends Error {}

const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true });

/** The connection-time lookup: every address the name resolves to must be allowed. */
function guardedLookup(resolve: Resolver): LookupFunction {
  return ((hostname, options, callback) => {
    resolve(hostname).then(
      (all) => {
        const addresses = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all;
        const blockedAddress = addresses.find((a) => isBlockedAddress(a.address));
        if (blockedAddress !== undefined) return callback(new BlockedAddressError(`${hostname} resolves to ${blockedAddress.address}`), '');
        const first = addresses[0];
        if (first === undefined) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
        if (options.all === true) return callback(null, addresses);
        callback(null, first.address, first.family);
      },
      (error: Error) => callback(error, ''),
    );
  }) as LookupFunction;
}

/** The scheme rule, and the address rule for IP literals (names are checked when connecting). */
function checkTarget(url: URL, options: SafeFetchOptions): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FetchError(url.href, `only http(s) URLs are fetched, not ${url.protocol}`);
  if (options.allowPrivateNetworks) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0 && isBlockedAddress(host)) throw new FetchError(url.href, `${host} is ${NOT_ALLOWED}`);
}

/** What stopped a request while it was under way, for the message. */
interface RequestState {
  idle: boolean;
}

function requestOnce(url: URL, headers: Record<string, string>, options: SafeFetchOptions, signal: AbortSignal, state: RequestState): Promise<IncomingMessage> {
  return new Promise((resolvePromise, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const lookup = options.allowPrivateNetworks ? {} : { lookup: guardedLookup(options.resolve ?? systemResolver) };
    // agent: false: a fresh connection per request, so a pooled socket made under other rules is never reused.
    const req = send(url, { method: 'GET', headers, signal, agent: false, ...lookup }, resolvePromise);
    // The socket's idle timer covers connecting, waiting for the answer and every gap in the body.
    req.setTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, () => {
      state.idle = true;
      req.destroy(new Error('idle'));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Credentials go only to the origin they were given for, never along a redirect to another host. */
function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !/^(authorization|cookie|proxy-authorization)$/i.test(name)));
}

async function openFollowingRedirects(
  url: string,
  options: SafeFetchOptions,
  signal: AbortSignal,
  state: RequestState,
): Promise<{ response: IncomingMessage; url: URL }> {
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw new FetchError(url, 'not a valid URL');
  }
  let headers = { ...options.headers };
  for (let hop = 0; ; hop++) {
    checkTarget(current, options);
    const response = await requestOnce(current, headers, options, signal, state);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (status >= 300 && status < 400 && location !== undefined) {
      response.destroy();
      if (hop >= (options.maxRedirects ?? 5)) throw new FetchError(url, 'too many redirects');
      const next = new URL(location, current);
      if (next.origin !== current.origin) headers = withoutCredentials(headers);
      current = next;
      continue;
    }
    if (status < 200 || status >= 300) {
      response.destroy();
      throw new FetchError(url, `HTTP ${status} ${response.statusMessage ?? ''}`.trim(), status);
    }
    const declared = Number(response.headers['content-length'] ?? NaN);
    if (declared > options.maxBytes) {
      response.destroy();
      throw new FetchError(url, `response of ${declared} bytes exceeds the ${options.maxBytes}-byte limit`);
    }
    return { response, url: current };
  }
}

/** Runs one guarded GET, turning every failure into a FetchError that says what went wrong. */
async function guardedGet<T>(
  url: string,
  options: SafeFetchOptions,
  consume: (response: IncomingMessage, finalUrl: URL, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
  const state: RequestState = { idle: false };
  try {
    if (options.signal?.aborted) throw new FetchError(url, 'cancelled');
    const { response, url: finalUrl } = await openFollowingRedirects(url, options, signal, state);
    return await consume(response, finalUrl, signal);
  } catch (error) {
    if (error instanceof FetchError) throw error;
    if (options.signal?.aborted) throw new FetchError(url, 'cancelled');
    if (timeout.aborted) throw new FetchError(url, `timed out after ${options.timeoutMs} ms`);
    if (state.idle) throw new FetchError(url, `stalled: no data for ${options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS} ms`);
    if (error instanceof BlockedAddressError) throw new FetchError(url, `${error.message}, ${NOT_ALLOWED}`);
    const code = (error as NodeJS.ErrnoException).code;
    throw new FetchError(
      url,
      `download failed: ${(error as Error).message}${code !== undefined && !(error as Error).message.includes(code) ? ` (${code})` : ''}`,
    );
  }
}

function byteCap(url: string, maxBytes: number, counter: { bytes: number }) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      counter.bytes += chunk.byteLength;
      if (counter.bytes > maxBytes) throw new FetchError(url, `response exceeds the ${maxBytes}-byte limit`);
      yield chunk;
    }
  };
}

function checkComplete(url: string, response: IncomingMessage, bytes: number): void {
  const declared = Number(response.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && bytes !== declared) throw new FetchError(url, `connection closed after ${bytes} of ${declared} bytes`);
}

/**
 * GETs `url` and streams its body into a new file at `destPath` (which must not exist). On any
 * failure the file is removed and a FetchError (with `status` for HTTP errors) is thrown.
 */
export async function safeDownload(url: string, destPath: string, options: SafeFetchOptions): Promise<SafeDownloadResult> {
  let created = false;
  try {
    return await guardedGet(url, options, async (response, finalUrl, signal) => {
      const handle = await open(destPath, 'wx');
      created = true;
      const counter = { bytes: 0 };
      await pipeline(response, byteCap(url, options.maxBytes, counter), handle.createWriteStream(), { signal });
      checkComplete(url, response, counter.bytes);
      return { url: finalUrl.href, bytes: counter.bytes, contentType: response.headers['content-type'] };
    });
  } catch (error) {
    if (created) await rm(destPath, { force: true });
    throw error;
  }
}

/** GETs `url` into memory under the same rules as safeDownload (images, small API answers). */
export async function safeFetch(url: string, options: SafeFetchOptions): Promise<Buffer> {
  return guardedGet(url, options, async (response, _finalUrl, signal) => {
    const chunks: Buffer[] = [];
    const counter = { bytes: 0 };
    await pipeline(
      response,
      byteCap(url, options.maxBytes, counter),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) chunks.push(chunk);
      },
      { signal },
    );
    checkComplete(url, response, counter.bytes);
    return Buffer.concat(chunks);
  });
}
