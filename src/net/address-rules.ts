/**
 * Which IP addresses a user-supplied URL may reach (docs/decisions.md): not loopback, private,
 * shared (CGNAT), link-local (cloud metadata), multicast, reserved or documentation ranges.
 * IPv6 addresses that carry an IPv4 address (IPv4-mapped and -translated, IPv4-compatible,
 * NAT64, 6to4, Teredo) are judged by the IPv4 address they lead to, so `[64:ff9b::7f00:1]`
 * is refused like `127.0.0.1`.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

const blockedV4 = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blockedV4.addSubnet(net, prefix, 'ipv4');
}

const blockedV6 = new BlockList();
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  // Local-use NAT64 (RFC 8215): never a public route.
  ['64:ff9b:1::', 48],
  // Discard-only (RFC 6666), documentation, ORCHID.
  ['100::', 64],
  ['2001:db8::', 32],
  ['2001:10::', 28],
  ['2001:20::', 28],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  blockedV6.addSubnet(net, prefix, 'ipv6');
}

/** The eight 16-bit words of an IPv6 address (a trailing dotted IPv4 part and a zone id allowed). */
function ipv6Words(address: string): number[] {
  let text = address.replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1] !== undefined) {
    const [a, b, c, d] = dotted[1].split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((word) => parseInt(word, 16)));
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

const ipv4Of = (high: number, low: number): string => [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');

/** The IPv4 addresses an IPv6 address embeds (RFC 4291, 6145, 6052, 3056, 4380), if any. */
export function embeddedIpv4(address: string): string[] {
  const w = ipv6Words(address) as [number, number, number, number, number, number, number, number];
  const zeros = (from: number, to: number) => w.slice(from, to).every((word) => word === 0);
  // ::a.b.c.d (compatible), ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated), 64:ff9b::a.b.c.d (NAT64).
  if (zeros(0, 5) && (w[5] === 0 || w[5] === 0xffff)) return [ipv4Of(w[6], w[7])];
  if (zeros(0, 4) && w[4] === 0xffff && w[5] === 0) return [ipv4Of(w[6], w[7])];
  if (w[0] === 0x64 && w[1] === 0xff9b && zeros(2, 6)) return [ipv4Of(w[6], w[7])];
  // 6to4: 2002:AABB:CCDD::/48.
  if (w[0] === 0x2002) return [ipv4Of(w[1], w[2])];
  // Teredo: 2001:0:<server IPv4>:<flags>:<port>:<client IPv4, inverted>.
  if (w[0] === 0x2001 && w[1] === 0) return [ipv4Of(w[2], w[3]), ipv4Of(~w[6] & 0xffff, ~w[7] & 0xffff)];
  return [];
}

/** True when a URL must not reach `address` (an IPv4 or IPv6 address). */
export function isBlockedAddress(address: string): boolean {
  if (isIPv4(address)) return blockedV4.check(address, 'ipv4');
  if (!isIPv6(address)) return true;
  if (blockedV6.check(address.replace(/%.*$/, ''), 'ipv6')) return true;
  return embeddedIpv4(address).some((v4) => blockedV4.check(v4, 'ipv4'));
}
