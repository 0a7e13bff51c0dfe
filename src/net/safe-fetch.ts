/**
 * Fetching user-supplied URLs (input images, LoRA files) under the rules of docs/decisions.md:
 * http(s) only; never loopback, private, link-local or metadata addresses unless the
 * operator allows them; capped size, time and redirects. Every hop of a redirect is checked.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { open, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { pipeline } from 'node:stream/promises';

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

export interface SafeFetchOptions {
  /** Allow loopback/private/link-local targets (tests, trusted networks). */
  allowPrivateNetworks?: boolean;
  maxBytes: number;
  timeoutMs: number;
  maxRedirects?: number;
  headers?: Record<string, string>;
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

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, prefix, 'ipv6');

function isBlockedAddress(address: string): boolean {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return blocked.check(mapped[1], 'ipv4');
  return blocked.check(address, family);
}

async function checkTarget(url: URL, options: SafeFetchOptions): Promise<void> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FetchError(url.href, `only http(s) URLs are fetched, not ${url.protocol}`);
  if (options.allowPrivateNetworks) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  } catch (error) {
    throw new FetchError(url.href, `cannot resolve ${host}: ${(error as Error).message}`);
  }
  if (addresses.some(isBlockedAddress)) throw new FetchError(url.href, `${host} is a private, loopback or link-local address, which is not allowed`);
}

/** GETs `url` and returns its body, enforcing the address, redirect, size and time rules. */
export async function safeFetch(url: string, options: SafeFetchOptions): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw new FetchError(url, 'not a valid URL');
  }
  try {
    for (let hop = 0; ; hop++) {
      await checkTarget(current, options);
      const response = await fetch(current, { redirect: 'manual', signal, headers: options.headers });
      if (response.status >= 300 && response.status < 400 && response.headers.has('location')) {
        await response.body?.cancel();
        if (hop >= (options.maxRedirects ?? 5)) throw new FetchError(url, 'too many redirects');
        current = new URL(response.headers.get('location') as string, current);
        continue;
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new FetchError(url, `HTTP ${response.status} ${response.statusText}`.trim());
      }
      const declared = Number(response.headers.get('content-length') ?? NaN);
      if (declared > options.maxBytes) {
        await response.body?.cancel();
        throw new FetchError(url, `response of ${declared} bytes exceeds the ${options.maxBytes}-byte limit`);
      }
      const chunks: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of response.body ?? []) {
        size += chunk.byteLength;
        if (size > options.maxBytes) throw new FetchError(url, `response exceeds the ${options.maxBytes}-byte limit`);
        chunks.push(chunk);
      }
      return Buffer.concat(chunks);
    }
  } catch (error) {
    if (error instanceof FetchError) throw error;
    if (signal.aborted) throw new FetchError(url, `timed out after ${options.timeoutMs} ms`);
    throw new FetchError(url, `download failed: ${(error as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming downloads. These use node:http(s) rather than fetch so that the address rule is also
// enforced when the connection is made (a custom DNS lookup refuses blocked addresses), which
// closes the gap between checking a host name and connecting to it (DNS rebinding).

export interface SafeDownloadOptions extends SafeFetchOptions {
  /** Cancels the download (the caller's cancellation; the time cap is separate). */
  signal?: AbortSignal;
}

export interface SafeDownloadResult {
  /** The URL the body came from, after redirects. */
  url: string;
  bytes: number;
  contentType: string | undefined;
}

class BlockedAddressError extends Error {}

const guardedLookup = ((
  hostname: string,
  options: LookupOptions,
  callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void,
): void => {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, '');
    const blockedAddress = addresses.find((a) => isBlockedAddress(a.address));
    if (blockedAddress !== undefined) return callback(new BlockedAddressError(`${hostname} resolves to ${blockedAddress.address}`), '');
    const first = addresses[0];
    if (first === undefined) return callback(new Error(`no address for ${hostname}`), '');
    if (options.all === true) return callback(null, addresses);
    callback(null, first.address, first.family);
  });
}) as LookupFunction;

function requestOnce(url: URL, headers: Record<string, string>, options: SafeDownloadOptions, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolvePromise, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    // agent: false: a fresh connection per request, so a pooled socket made under other rules is never reused.
    const req = send(url, { method: 'GET', headers, signal, agent: false, ...(options.allowPrivateNetworks ? {} : { lookup: guardedLookup }) }, resolvePromise);
    req.on('error', reject);
    req.end();
  });
}

/** Credentials go only to the origin they were given for, never along a redirect to another host. */
function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !/^(authorization|cookie|proxy-authorization)$/i.test(name)));
}

async function openFollowingRedirects(url: string, options: SafeDownloadOptions, signal: AbortSignal): Promise<{ response: IncomingMessage; url: URL }> {
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw new FetchError(url, 'not a valid URL');
  }
  let headers = { ...options.headers };
  for (let hop = 0; ; hop++) {
    await checkTarget(current, options);
    const response = await requestOnce(current, headers, options, signal);
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
  options: SafeDownloadOptions,
  consume: (response: IncomingMessage, finalUrl: URL, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
  try {
    if (options.signal?.aborted) throw new FetchError(url, 'cancelled');
    const { response, url: finalUrl } = await openFollowingRedirects(url, options, signal);
    return await consume(response, finalUrl, signal);
  } catch (error) {
    if (error instanceof FetchError) throw error;
    if (options.signal?.aborted) throw new FetchError(url, 'cancelled');
    if (timeout.aborted) throw new FetchError(url, `timed out after ${options.timeoutMs} ms`);
    if (error instanceof BlockedAddressError) throw new FetchError(url, `${error.message}, a private, loopback or link-local address, which is not allowed`);
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
 * GETs `url` and streams its body into a new file at `destPath` (which must not exist), under the
 * same rules as safeFetch plus cancellation. On any failure the file is removed and a FetchError
 * (with `status` for HTTP errors) is thrown.
 */
export async function safeDownload(url: string, destPath: string, options: SafeDownloadOptions): Promise<SafeDownloadResult> {
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

/** GETs `url` into memory under the same rules as safeDownload (for small API answers). */
export async function safeDownloadBytes(url: string, options: SafeDownloadOptions): Promise<Buffer> {
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
