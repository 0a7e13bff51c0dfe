/**
 * The predictions the server remembers, by id and by public key. Unfinished ones are bounded
 * by the queue; finished ones are forgotten (and their output folder removed) after the
 * retention time, or sooner, oldest first, once more than `maxRetained` are kept.
 */
import { rm } from 'node:fs/promises';
import type { Prediction } from './prediction.js';

export interface RetentionOptions {
  retentionMs: number;
  maxRetained: number;
}

export class PredictionStore {
  private readonly byId = new Map<string, Prediction>();
  private readonly byKey = new Map<string, Prediction>();
  /** Finished predictions in the order they finished, with their expiry timers. */
  private readonly finished = new Map<Prediction, NodeJS.Timeout>();

  constructor(private readonly options: RetentionOptions) {}

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

  /** Starts the retention of a finished prediction. */
  retain(prediction: Prediction): void {
    if (this.byId.get(prediction.id) !== prediction) return;
    this.finished.set(prediction, setTimeout(() => void this.remove(prediction), this.options.retentionMs).unref());
    for (const oldest of this.finished.keys()) {
      if (this.finished.size <= this.options.maxRetained) break;
      void this.remove(oldest);
    }
  }

  /** Forgets a prediction and deletes its output folder. */
  async remove(prediction: Prediction): Promise<void> {
    clearTimeout(this.finished.get(prediction));
    this.finished.delete(prediction);
    if (this.byId.get(prediction.id) === prediction) this.byId.delete(prediction.id);
    this.byKey.delete(prediction.spec.key);
    await rm(prediction.spec.dir, { recursive: true, force: true });
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
