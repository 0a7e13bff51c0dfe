/**
 * The predictions the server remembers, by id and by public key. Unfinished ones are bounded
 * by the queue; finished ones are forgotten (and their output folder removed) after the
 * retention time, or sooner, oldest first, once more than `maxRetained` are kept or their
 * output files take more than `maxRetainedBytes`.
 */
import { rm } from 'node:fs/promises';
import type { Prediction } from './prediction.js';

export interface RetentionOptions {
  retentionMs: number;
  maxRetained: number;
  /** Bytes the retained predictions' output files may take (default: no bound). */
  maxRetainedBytes?: number;
}

export class PredictionStore {
  private readonly byId = new Map<string, Prediction>();
  private readonly byKey = new Map<string, Prediction>();
  /** Finished predictions in the order they finished, with their expiry timers and output bytes. */
  private readonly finished = new Map<Prediction, { timer: NodeJS.Timeout; bytes: number }>();
  private retainedBytes = 0;

  /** `onRemove` hears of each prediction forgotten (the journal deletes it). */
  constructor(
    private readonly options: RetentionOptions,
    private readonly onRemove: (prediction: Prediction) => void = () => undefined,
  ) {}

  get(id: string): Prediction | undefined {
    return this.byId.get(id);
  }

  getByKey(key: string): Prediction | undefined {
    return this.byKey.get(key);
  }

  add(prediction: Prediction): void {
    this.byId.set(prediction.id, prediction);
    this.byKey.set(prediction.spec.key, prediction);
  }

  /**
   * Starts the retention of a finished prediction whose outputs take `bytes`; it is forgotten
   * the retention time after it finished (at once when that has passed: a restored one).
   */
  retain(prediction: Prediction, bytes = 0): void {
    if (this.byId.get(prediction.id) !== prediction) return;
    const age = Date.now() - (prediction.completedAt ?? new Date()).getTime();
    const timer = setTimeout(() => void this.remove(prediction), Math.max(0, this.options.retentionMs - age)).unref();
    this.finished.set(prediction, { timer, bytes });
    this.retainedBytes += bytes;
    const maxBytes = this.options.maxRetainedBytes ?? Infinity;
    for (const oldest of this.finished.keys()) {
      if (this.finished.size <= this.options.maxRetained && this.retainedBytes <= maxBytes) break;
      void this.remove(oldest);
    }
  }

  /** Forgets a prediction and deletes its output folder. */
  async remove(prediction: Prediction): Promise<void> {
    const retained = this.finished.get(prediction);
    if (retained !== undefined) {
      clearTimeout(retained.timer);
      this.retainedBytes -= retained.bytes;
      this.finished.delete(prediction);
    }
    if (this.byId.get(prediction.id) === prediction) {
      this.byId.delete(prediction.id);
      this.onRemove(prediction);
    }
    this.byKey.delete(prediction.spec.key);
    await rm(prediction.spec.dir, { recursive: true, force: true });
  }

  /** Stops the retention timers, forgetting nothing (the journal keeps them for the next start). */
  detach(): void {
    for (const { timer } of this.finished.values()) clearTimeout(timer);
  }

  /** Every prediction remembered, newest first. */
  newestFirst(): Prediction[] {
    return [...this.byId.values()].reverse();
  }

  /** Every prediction not yet finished. */
  unfinished(): Prediction[] {
    return [...this.byId.values()].filter((p) => !p.terminal);
  }

  async clear(): Promise<void> {
    await Promise.all([...this.byId.values()].map((p) => this.remove(p)));
  }
}
