/**
 * Predictions as an API node sees them: Prediction objects made from Redis (outputs read from
 * Redis too), and, for the unfinished ones a request follows (a synchronous or `Prefer: wait`
 * create, an event stream, a cancel), live mirrors kept up to date: every change publishes
 * `<id> <seq>`, and the mirror then reads what it lacks (the new log lines and progress steps,
 * the status), so the routes' waits and event streams work as on the single server. Mirrors
 * also catch up once a second, which covers messages lost while Redis was away.
 */
import { basename } from 'node:path';
import type { Redis } from 'ioredis';
import { fromRecord } from '../server/prediction-record.js';
import type { Prediction } from '../server/prediction.js';
import { CHANNELS, splitRecord, type ClusterStore, type Snapshot } from './cluster-store.js';

const CATCH_UP_MS = 1000;

/** The prediction a snapshot describes; its output files are read from Redis. */
export function materialize(snapshot: Snapshot, store: ClusterStore): Prediction {
  const prediction = fromRecord(snapshot.record, '');
  const { key } = snapshot.record;
  prediction.readOutput = async (file) => {
    const bytes = await store.getOutput(key, basename(file.path));
    if (bytes === null) throw new Error(`output ${basename(file.path)} of prediction ${snapshot.record.id} has expired`);
    return bytes;
  };
  return prediction;
}

interface Mirror {
  prediction: Prediction;
  seq: number;
  /** The last catch-up asked for (they run one after the other). */
  tail: Promise<void>;
  /** A catch-up asked for and not started yet (later askers share it). */
  pending: Promise<void> | null;
}

export class Mirrors {
  private readonly live = new Map<string, Mirror>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: ClusterStore,
    private readonly subscriber: Redis,
  ) {
    void subscriber.subscribe(CHANNELS.events).catch(() => undefined); // ioredis subscribes again after a reconnect
    subscriber.on('message', (_channel: string, message: string) => {
      const [id = '', seq] = message.split(' ');
      const mirror = this.live.get(id);
      if (mirror !== undefined && Number(seq) > mirror.seq) void this.sync(id, mirror);
    });
    this.timer = setInterval(() => {
      for (const [id, mirror] of this.live) void this.sync(id, mirror);
    }, CATCH_UP_MS).unref();
  }

  /**
   * A prediction by id: the live mirror, caught up first (so a change made through another API
   * node is seen), or one made from Redis (and followed while unfinished).
   */
  async get(id: string): Promise<Prediction | undefined> {
    const mirror = this.live.get(id);
    if (mirror !== undefined) {
      await this.sync(id, mirror);
      return mirror.prediction;
    }
    const snapshot = await this.store.snapshot(id);
    if (snapshot === undefined) return undefined;
    const prediction = materialize(snapshot, this.store);
    if (!prediction.terminal) this.follow(prediction, snapshot.seq);
    return prediction;
  }

  /** Follows a prediction this node holds (one it created: seq 0). */
  follow(prediction: Prediction, seq: number): void {
    const mirror: Mirror = { prediction, seq, tail: Promise.resolve(), pending: null };
    this.live.set(prediction.id, mirror);
    void this.sync(prediction.id, mirror);
  }

  /** The unfinished predictions followed here. */
  followed(): Prediction[] {
    return [...this.live.values()].map((m) => m.prediction);
  }

  /** Catches the mirror up after whatever catch-up is under way; resolves when done (or failed: Redis away, the next one retries). */
  private sync(id: string, mirror: Mirror): Promise<void> {
    if (mirror.pending !== null) return mirror.pending;
    const next = mirror.tail
      .then(() => {
        mirror.pending = null;
        return this.live.get(id) === mirror ? this.catchUp(id, mirror) : undefined;
      })
      .catch(() => undefined);
    mirror.pending = next;
    mirror.tail = next;
    return next;
  }

  private async catchUp(id: string, mirror: Mirror): Promise<void> {
    const { prediction } = mirror;
    const snapshot = await this.store.snapshot(id, prediction.history.length);
    if (snapshot === undefined) {
      this.live.delete(id);
      return;
    }
    mirror.seq = Math.max(mirror.seq, snapshot.seq);
    const { record } = snapshot;
    for (const event of record.history) prediction.replay(event);
    if (record.status === 'processing' && prediction.status === 'starting') {
      prediction.start();
      prediction.startedAt = record.startedAt === null ? prediction.startedAt : new Date(record.startedAt);
    } else if (record.status === 'starting' && prediction.status === 'processing') {
      prediction.status = 'starting'; // taken back from a stopped worker, waiting for another
    }
    if (record.status === 'succeeded' || record.status === 'failed' || record.status === 'canceled') {
      this.live.delete(id);
      const done = materialize(snapshot, this.store);
      const { state } = splitRecord(record);
      prediction.settle({
        ...state,
        createdAt: done.createdAt,
        startedAt: done.startedAt,
        completedAt: done.completedAt,
        outputs: done.outputs,
      });
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
