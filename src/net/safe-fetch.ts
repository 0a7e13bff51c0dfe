/**
 * Fetching user-supplied URLs (input images, LoRA files) under the rules of DECISIONS.md:
 * http(s) only; never loopback, private, link-local or metadata addresses unless the
 * operator allows them; capped size, time and redirects. Every hop of a redirect is checked.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

export class FetchError extends Error {
  constructor(
    readonly url: string,
    detail: string,
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
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) blocked.addSubnet(net, prefix, 'ipv6');

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
