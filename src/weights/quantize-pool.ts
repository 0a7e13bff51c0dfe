/**
 * Block quantization on worker threads, one linear per job, so deriving a model's 8-bit weights
 * uses every core (a FLUX transformer has ~500 linears; one thread took 341 s on 2 cores). A job
 * carries the stored bytes (bf16, f16, f8 or f32) or where they lie in their file: reading them and
 * any conversion run on the worker too. Results written out come back through `recycle`, and a later
 * 8-bit job's result lies in one of them: a fresh buffer's first touch costs 14–39× a refill here, about
 * as much as quantizing into it (docs/onnxruntime.md §10.11).
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../util/module-worker.js';
import type { QuantizedWeight, QuantizeOptions } from './quantize.js';
import { quantized8Bytes } from './quantize-simd.js';
import type { StoredWeight } from './quantize-stored.js';
import type { QuantizeJob } from './quantize-worker.js';

interface Pending {
  resolve(q: QuantizedWeight): void;
  reject(error: Error): void;
}

export class QuantizePool {
  private readonly workers: Worker[];
  private readonly idle: Worker[];
  private readonly waiting: { job: QuantizeJob; pending: Pending }[] = [];
  private readonly pending = new Map<number, Pending>();
  /** Buffers of results already written, smallest first; at most `size` of them. */
  private readonly spares: ArrayBuffer[] = [];
  private nextId = 1;

  constructor(readonly size = availableParallelism()) {
    this.workers = Array.from({ length: size }, () => {
      const worker = startModuleWorker(import.meta.url, 'quantize-worker');
      worker.on('message', (message: { id: number; result?: QuantizedWeight; error?: string }) => this.settle(worker, message));
      worker.on('error', (error) => this.failAll(error));
      return worker;
    });
    this.idle = [...this.workers];
  }

  /**
   * Converts and quantizes `weight` [n, k] on a free thread. Bytes in memory move there (a view of part of
   * a larger buffer is copied out first, so only its own bytes travel); bytes in a file are read there.
   */
  quantize(weight: StoredWeight, n: number, k: number, options: QuantizeOptions): Promise<QuantizedWeight> {
    const { bytes } = weight;
    const own = !(bytes instanceof Uint8Array) || (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) ? bytes : bytes.slice();
    return new Promise((resolve, reject) => {
      this.waiting.push({ job: { id: this.nextId++, weight: { ...weight, bytes: own }, n, k, options }, pending: { resolve, reject } });
      this.dispatch();
    });
  }

  /** Gives back the buffer of a result that has been written and is no longer read, for a later result to lie in. */
  recycle(buffer: ArrayBuffer): void {
    this.spares.push(buffer);
    this.spares.sort((a, b) => a.byteLength - b.byteLength);
    if (this.spares.length > this.size) this.spares.shift();
  }

  /** The smallest spare that holds the job's 8-bit result, taken off the list. */
  private spareFor(job: QuantizeJob): ArrayBuffer | undefined {
    if (job.options.bits !== 8) return undefined;
    const bytes = quantized8Bytes(job.n, job.k, job.options.blockSize);
    const index = this.spares.findIndex((b) => b.byteLength >= bytes);
    return index < 0 ? undefined : this.spares.splice(index, 1)[0];
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.waiting.length > 0) {
      const worker = this.idle.pop() as Worker;
      const { job, pending } = this.waiting.shift() as (typeof this.waiting)[number];
      this.pending.set(job.id, pending);
      const { bytes } = job.weight;
      const spare = this.spareFor(job);
      const transfer = [...(bytes instanceof Uint8Array ? [bytes.buffer as ArrayBuffer] : []), ...(spare === undefined ? [] : [spare])];
      worker.postMessage(spare === undefined ? job : { ...job, spare }, transfer);
    }
  }

  private settle(worker: Worker, message: { id: number; result?: QuantizedWeight; error?: string }): void {
    const pending = this.pending.get(message.id);
    this.pending.delete(message.id);
    this.idle.push(worker);
    if (message.result !== undefined) pending?.resolve(message.result);
    else pending?.reject(new Error(message.error ?? 'quantization failed'));
    this.dispatch();
  }

  private failAll(error: Error): void {
    for (const p of [...this.pending.values(), ...this.waiting.splice(0).map((w) => w.pending)]) p.reject(error);
    this.pending.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
