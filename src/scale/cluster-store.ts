/**
 * The predictions of a scaled deployment in Redis, shared by every API node and worker:
 *
 * - `flux:p:<id>` a hash: `spec` (what was asked, JSON), `state` (status, times, outputs,
 *   error, metrics, JSON), and beside them `status`, `attempt` (1, or 2 once retried), `worker`
 *   (the one running it), `seq` (bumped by every change), `model` and `ttl` (retention);
 * - `flux:h:<id>` the log lines and progress steps in order (JSON each);
 * - `flux:k:<key>` the id behind a public key; `flux:index` ids by creation time;
 *   `flux:running` the ids a worker has claimed and not finished; `flux:o:<key>:<name>` output files;
 * - `flux:w:<worker>` each live worker's announcement (expires without its heartbeat), listed in `flux:workers`;
 * - channel `flux:events` carries `<id> <seq>` after each change, `flux:cancel` the ids to cancel.
 *
 * Every change goes through one Lua script that checks the state it expects (status, attempt,
 * worker) before it writes: a worker that lost its job (it was retried elsewhere, or canceled
 * before it started) cannot write over it, and a prediction ends once.
 */
import type { Redis } from 'ioredis';
import type { PredictionRecord } from '../server/prediction-record.js';
import type { Status } from '../server/prediction.js';

export const CHANNELS = { events: 'flux:events', cancel: 'flux:cancel' } as const;

const key = {
  prediction: (id: string) => `flux:p:${id}`,
  history: (id: string) => `flux:h:${id}`,
  publicKey: (k: string) => `flux:k:${k}`,
  output: (k: string, name: string) => `flux:o:${k}:${name}`,
  worker: (id: string) => `flux:w:${id}`,
  index: 'flux:index',
  running: 'flux:running',
  workers: 'flux:workers',
};

type SpecFields = 'id' | 'key' | 'api' | 'input' | 'model' | 'version' | 'webhook' | 'output' | 'baseUrl';
export type ClusterSpec = Pick<PredictionRecord, SpecFields>;
export type ClusterState = Omit<PredictionRecord, SpecFields | 'history'>;

export interface Snapshot {
  record: PredictionRecord;
  attempt: number;
  worker: string;
  seq: number;
  /** The model (queue) it was routed to. */
  model: string;
}

/** What a change expects to find; a mismatch leaves everything as it is. */
export interface Guard {
  status: Status[];
  attempt?: number;
  worker?: string;
}

export interface Change {
  status?: Status;
  state?: ClusterState;
  /** Log lines and progress steps to append. */
  history?: PredictionRecord['history'];
  attempt?: number;
  worker?: string;
}

/** What a worker announces (and refreshes with its heartbeat). */
export interface WorkerInfo {
  id: string;
  /** The owner/name it serves. */
  model: string;
  /** FLUX.1 variants its weights hold (dev, schnell). */
  variants: string[];
  /** Its operator disabled the safety checker (requests must then disable it too). */
  safetyDisabled: boolean;
  host: string;
  pid: number;
  /** The prediction it runs, if any. */
  running: string | null;
  /** SIGTERM: it finishes its job and takes no other. */
  draining: boolean;
}

const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'state', ARGV[3], 'status', 'starting', 'attempt', 1, 'worker', '', 'seq', 0, 'model', ARGV[5], 'ttl', ARGV[6])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1`;

const CHANGE = `
local g = cjson.decode(ARGV[2])
local u = cjson.decode(ARGV[3])
local cur = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'worker', 'ttl')
if not cur[1] then return 0 end
local ok = false
for _, s in ipairs(g.status) do if s == cur[1] then ok = true end end
if not ok then return 0 end
if g.attempt and tostring(g.attempt) ~= cur[2] then return 0 end
if g.worker and g.worker ~= cur[3] then return 0 end
if u.history then for _, entry in ipairs(u.history) do redis.call('RPUSH', KEYS[2], entry) end end
for _, field in ipairs({'state', 'status', 'attempt', 'worker'}) do
  if u[field] then redis.call('HSET', KEYS[1], field, u[field]) end
end
local status = u.status or cur[1]
local worker = u.worker or cur[3]
if (status == 'starting' or status == 'processing') and worker ~= '' then redis.call('SADD', KEYS[3], ARGV[1]) else redis.call('SREM', KEYS[3], ARGV[1]) end
if status == 'succeeded' or status == 'failed' or status == 'canceled' then
  redis.call('PEXPIRE', KEYS[1], cur[4])
  redis.call('PEXPIRE', KEYS[2], cur[4])
  redis.call('PEXPIRE', KEYS[4], cur[4])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('PUBLISH', KEYS[5], ARGV[1] .. ' ' .. seq)
return seq`;

export function splitRecord(record: PredictionRecord): { spec: ClusterSpec; state: ClusterState } {
  const { id, key: k, api, input, model, version, webhook, output, baseUrl, status, createdAt, startedAt, completedAt, outputs, error, metrics } = record;
  return {
    spec: { id, key: k, api, input, model, version, webhook, output, baseUrl },
    state: { status, createdAt, startedAt, completedAt, outputs, error, metrics },
  };
}

export class ClusterStore {
  constructor(private readonly redis: Redis) {}

  /** Saves a new prediction routed to `model`; false when its id is taken. */
  async create(record: PredictionRecord, model: string, retentionMs: number): Promise<boolean> {
    const { spec, state } = splitRecord(record);
    const created = await this.redis.eval(
      CREATE,
      3,
      key.prediction(record.id),
      key.publicKey(record.key),
      key.index,
      record.id,
      JSON.stringify(spec),
      JSON.stringify(state),
      record.createdAt,
      model,
      Math.round(retentionMs),
    );
    return created === 1;
  }

  /** Applies `change` if the prediction is as `guard` expects; the new seq, or 0 when it was not. */
  async change(id: string, publicKey: string, guard: Guard, change: Change): Promise<number> {
    const update = {
      ...change,
      state: change.state === undefined ? undefined : JSON.stringify(change.state),
      history: change.history?.map((event) => JSON.stringify(event)),
    };
    const seq = await this.redis.eval(
      CHANGE,
      5,
      key.prediction(id),
      key.history(id),
      key.running,
      key.publicKey(publicKey),
      CHANNELS.events,
      id,
      JSON.stringify(guard),
      JSON.stringify(update),
    );
    return Number(seq);
  }

  /** The prediction as stored, its history from entry `from` on; undefined when unknown (or expired). */
  async snapshot(id: string, from = 0): Promise<Snapshot | undefined> {
    const result = await this.redis
      .multi()
      .hmget(key.prediction(id), 'spec', 'state', 'status', 'attempt', 'worker', 'seq', 'model')
      .lrange(key.history(id), from, -1)
      .exec();
    const [fields, history] = (result ?? []).map(([error, value]) => {
      if (error !== null) throw error;
      return value;
    }) as [(string | null)[], string[]];
    const [spec, state, status, attempt, worker, seq, model] = fields;
    if (spec === null || spec === undefined || state === null || state === undefined) return undefined;
    const record: PredictionRecord = {
      ...(JSON.parse(spec) as ClusterSpec),
      ...(JSON.parse(state) as ClusterState),
      status: status as Status,
      history: history.map((entry) => JSON.parse(entry) as PredictionRecord['history'][number]),
    };
    return { record, attempt: Number(attempt), worker: worker ?? '', seq: Number(seq), model: model ?? '' };
  }

  async idOfKey(publicKey: string): Promise<string | undefined> {
    return (await this.redis.get(key.publicKey(publicKey))) ?? undefined;
  }

  /** Ids newest first, `count` from `offset`, and how many there are (ids whose prediction expired are dropped). */
  async ids(offset: number, count: number): Promise<{ ids: string[]; total: number }> {
    const all = await this.redis.zrevrange(key.index, 0, -1);
    const exists = await Promise.all(all.map((id) => this.redis.exists(key.prediction(id))));
    const gone = all.filter((_, i) => exists[i] === 0);
    if (gone.length > 0) await this.redis.zrem(key.index, ...gone);
    const live = all.filter((_, i) => exists[i] === 1);
    return { ids: live.slice(offset, offset + count), total: live.length };
  }

  /** The ids a worker has claimed and not finished, with the worker and attempt of each. */
  async running(): Promise<{ id: string; key: string; worker: string; attempt: number }[]> {
    const ids = await this.redis.smembers(key.running);
    const rows = await Promise.all(ids.map((id) => this.redis.hmget(key.prediction(id), 'worker', 'attempt', 'spec')));
    return ids.flatMap((id, i) => {
      const [worker, attempt, spec] = rows[i] ?? [];
      if (worker === null || worker === undefined || spec === null || spec === undefined) return [];
      return [{ id, key: (JSON.parse(spec) as ClusterSpec).key, worker, attempt: Number(attempt) }];
    });
  }

  async putOutput(publicKey: string, name: string, bytes: Buffer, ttlMs: number): Promise<void> {
    await this.redis.set(key.output(publicKey, name), bytes, 'PX', Math.round(ttlMs));
  }

  async getOutput(publicKey: string, name: string): Promise<Buffer | null> {
    return this.redis.getBuffer(key.output(publicKey, name));
  }

  async retention(id: string): Promise<number> {
    return Number(await this.redis.hget(key.prediction(id), 'ttl'));
  }

  /** Announces a worker for `ttlMs` (its heartbeat renews it). */
  async announce(info: WorkerInfo, ttlMs: number): Promise<void> {
    await this.redis.multi().set(key.worker(info.id), JSON.stringify(info), 'PX', ttlMs).sadd(key.workers, info.id).exec();
  }

  async retire(workerId: string): Promise<void> {
    await this.redis.multi().del(key.worker(workerId)).srem(key.workers, workerId).exec();
  }

  /** The live workers (those whose announcement has not expired). */
  async workers(): Promise<WorkerInfo[]> {
    const ids = await this.redis.smembers(key.workers);
    if (ids.length === 0) return [];
    const infos = await this.redis.mget(ids.map(key.worker));
    const gone = ids.filter((_, i) => infos[i] === null);
    if (gone.length > 0) await this.redis.srem(key.workers, ...gone);
    return infos.flatMap((info) => (info === null ? [] : [JSON.parse(info) as WorkerInfo]));
  }
}
