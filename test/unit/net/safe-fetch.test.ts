/**
 * The outbound-fetch rules (src/net/): which addresses are refused (IPv6 forms that embed a
 * blocked IPv4 address included), the address check made when connecting (DNS rebinding),
 * the idle timeout of a stalled server, and servers that lie about their length.
 */
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedIpv4, isBlockedAddress } from '../../../src/net/address-rules.js';
import { FetchError, safeDownload, safeFetch, type Resolver } from '../../../src/net/safe-fetch.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('safe-fetch-');

describe('address rules', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['169.254.169.254', 'cloud metadata'],
    ['100.64.0.1', 'shared (CGNAT)'],
    ['0.0.0.0', 'this network'],
    ['::1', 'IPv6 loopback'],
    ['::', 'IPv6 unspecified'],
    ['fe80::1', 'IPv6 link-local'],
    ['fe80::1%eth0', 'IPv6 link-local with a zone'],
    ['fd00::1', 'IPv6 unique local'],
    ['::ffff:127.0.0.1', 'IPv4-mapped, dotted'],
    ['::ffff:7f00:1', 'IPv4-mapped, hex'],
    ['::ffff:0:a9fe:a9fe', 'IPv4-translated metadata'],
    ['::7f00:1', 'IPv4-compatible loopback'],
    ['::10.0.0.1', 'IPv4-compatible private'],
    ['64:ff9b::7f00:1', 'NAT64 of loopback'],
    ['64:ff9b::169.254.169.254', 'NAT64 of metadata'],
    ['64:ff9b:1::808:808', 'local-use NAT64'],
    ['2002:7f00:1::1', '6to4 of loopback'],
    ['2002:a9fe:a9fe::', '6to4 of metadata'],
    ['2001:0:7f00:1::808:808', 'Teredo with a loopback server'],
    ['2001:0:808:808:0:0:f5ff:fffe', 'Teredo with a loopback client (inverted)'],
    ['not-an-address', 'not an address at all'],
  ])('%s is refused (%s)', (address) => {
    expect(isBlockedAddress(address)).toBe(true);
  });

  it.each([['8.8.8.8'], ['2001:4860:4860::8888'], ['2002:808:808::1'], ['64:ff9b::808:808'], ['2001:0:808:808::f7f7:f7f7']])('%s is allowed', (address) => {
    expect(isBlockedAddress(address)).toBe(false);
  });

  it('decodes the IPv4 address each IPv6 form carries', () => {
    expect(embeddedIpv4('::ffff:1.2.3.4')).toEqual(['1.2.3.4']);
    expect(embeddedIpv4('64:ff9b::102:304')).toEqual(['1.2.3.4']);
    expect(embeddedIpv4('2002:102:304::')).toEqual(['1.2.3.4']);
    expect(embeddedIpv4('2001:0:102:304::fefd:fcfb')).toEqual(['1.2.3.4', '1.2.3.4']);
    expect(embeddedIpv4('2001:4860::1')).toEqual([]);
  });
});

describe('safeFetch and safeDownload', () => {
  let server: Server;
  let base = '';
  const requests: string[] = [];
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/ok': (_req, res) => res.end('hello'),
    // Accepts the request and sends nothing.
    '/silent': () => undefined,
    // Sends the headers and a few bytes, then nothing more.
    '/stall-body': (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('abc');
    },
    // Declares 1000 bytes, sends 10 and closes.
    '/short': (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.end('0123456789');
      res.socket?.destroySoon();
    },
    // A gzip bomb sent as content-encoding: never inflated by us.
    '/gzip': (_req, res) => res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(4 * 2 ** 20))),
  };
  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      (routes[req.url ?? ''] ?? ((_q, r) => r.writeHead(404).end()))(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });
  const local = { maxBytes: 1 << 20, timeoutMs: 5000, allowPrivateNetworks: true };
  const failure = async (promise: Promise<unknown>): Promise<FetchError> => {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FetchError);
    return error as FetchError;
  };

  it('refuses IPv6 literals that embed a blocked IPv4 address before connecting', async () => {
    const port = new URL(base).port;
    for (const host of ['[::ffff:7f00:1]', '[64:ff9b::7f00:1]', '[2002:7f00:1::]', '[::7f00:1]', '0x7f.1', '2130706433']) {
      const error = await failure(safeFetch(`http://${host}:${port}/ok`, { maxBytes: 100, timeoutMs: 2000 }));
      expect(error.message).toMatch(/is a private, loopback or link-local address, which is not allowed/);
    }
  });

  it('checks the address the connection is made to: a name that rebinds to loopback is refused and nothing is sent', async () => {
    const port = new URL(base).port;
    let calls = 0;
    // The first answer is public (what a check made before connecting would see), later ones loopback.
    const rebinding: Resolver = async () => (calls++ === 0 ? [{ address: '93.184.216.34', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
    const before = requests.length;
    for (const fetchOnce of [
      (resolve: Resolver) => safeFetch(`http://rebind.example:${port}/ok`, { maxBytes: 100, timeoutMs: 2000, resolve }),
      (resolve: Resolver) => safeDownload(`http://rebind.example:${port}/ok`, join(tmp(), 'rebind'), { maxBytes: 100, timeoutMs: 2000, resolve }),
    ]) {
      calls = 1;
      const error = await failure(fetchOnce(rebinding));
      expect(error.message).toMatch(/^rebind\.example resolves to 127\.0\.0\.1, a private, loopback or link-local address, which is not allowed/);
    }
    expect(requests.length).toBe(before);
    expect(existsSync(join(tmp(), 'rebind'))).toBe(false);
    // The same resolver's public answer is used as is (the connection then fails: nothing listens there in a test).
    calls = 0;
    const error = await failure(safeFetch(`http://rebind.example:${port}/ok`, { maxBytes: 100, timeoutMs: 300, idleTimeoutMs: 200, resolve: rebinding }));
    expect(error.message).not.toMatch(/not allowed/);
  });

  it('a server that stalls, before the answer or in the body, fails after the idle time, naming the URL', async () => {
    for (const path of ['/silent', '/stall-body']) {
      const started = performance.now();
      const error = await failure(safeFetch(`${base}${path}`, { ...local, idleTimeoutMs: 200 }));
      expect(error.message).toBe(`stalled: no data for 200 ms (${base}${path})`);
      expect(performance.now() - started).toBeLessThan(4000);
      const file = join(tmp(), `stalled${path.replace('/', '-')}`);
      expect((await failure(safeDownload(`${base}${path}`, file, { ...local, idleTimeoutMs: 200 }))).message).toMatch(/^stalled: no data for 200 ms/);
      expect(existsSync(file)).toBe(false);
    }
  });

  it('a body shorter than declared fails; a content-encoded body is taken as is (never inflated)', async () => {
    expect((await failure(safeFetch(`${base}/short`, local))).message).toMatch(/connection closed after 10 of 1000 bytes|download failed/);
    const raw = await safeFetch(`${base}/gzip`, local);
    expect(raw.byteLength).toBeLessThan(10_000);
    expect((await failure(safeFetch(`${base}/gzip`, { ...local, maxBytes: 1000 }))).message).toMatch(/exceeds the 1000-byte limit/);
  });
});
