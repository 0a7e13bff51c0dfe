/**
 * Connections to the Redis of a scaled deployment. API nodes fail fast while Redis is away
 * (no offline queue: a request gets 503 naming Redis, not a hang); workers and blocking BullMQ
 * connections wait and retry, so a Redis restart under load loses nothing they were writing.
 */
import { Redis, type RedisOptions } from 'ioredis';

export type ConnectionRole = 'api' | 'worker' | 'subscriber';

const ROLE_OPTIONS: Record<ConnectionRole, RedisOptions> = {
  api: { enableOfflineQueue: false, maxRetriesPerRequest: 1 },
  worker: { maxRetriesPerRequest: null },
  subscriber: { maxRetriesPerRequest: null },
};

/** Reconnects every 200 ms at first, backing off to 2 s. */
const retryStrategy = (times: number): number => Math.min(200 * times, 2000);

export function connect(url: string, role: ConnectionRole): Redis {
  const redis = new Redis(url, { ...ROLE_OPTIONS[role], retryStrategy, lazyConnect: false });
  // Connection errors are reported through `status` and the 503 answers; ioredis would print each one.
  redis.on('error', () => undefined);
  return redis;
}

/** redis://host:port without credentials, for messages. */
export function describeRedis(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'Redis';
  }
}

/** Checks a --redis value: a redis:// or rediss:// URL. */
export function isRedisUrl(text: string): boolean {
  return /^rediss?:\/\/[^/]/i.test(text) && URL.canParse(text);
}
