/**
 * Main-thread handle to a worker thread hosting onnxruntime sessions. Requests are sent
 * one at a time, so a run that is aborted before it starts never runs, and an abort during
 * a run takes effect when that run (one step) ends: the caller is released at once and the
 * result is dropped.
 */
import type { Worker } from 'node:worker_threads';
import { disableEngineTelemetry } from '../config.js';
import { startModuleWorker } from '../util/module-worker.js';
import type { BuiltModel } from './graph.js';
import { InferenceWorkerError, OnnxRuntimeError, RunCancelledError } from './errors.js';
import type { SessionSettings } from './session-options.js';
import type { TensorMap } from './tensor-data.js';
import type { KeptView, LoadResult, SerializedError, WorkerRequest, WorkerResponse } from './worker-protocol.js';

type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

interface Job {
  id: number;
  body: RequestBody;
  /** Buffers moved to the worker instead of copied. */
  transfer?: ArrayBuffer[];
  model: string;
  signal?: AbortSignal;
  resolve(value: unknown): void;
  reject(error: Error): void;
  onAbort?: () => void;
}

function spawnWorker(): Worker {
  // Before the worker loads onnxruntime-node (for library users; the CLI has done it on start).
  disableEngineTelemetry();
  return startModuleWorker(import.meta.url, 'inference-worker');
}

function deserializeError(error: SerializedError): Error {
  if (error.name === 'OnnxRuntimeError' && error.model !== undefined && error.phase !== undefined) {
    return new OnnxRuntimeError(error.model, error.phase, error.detail ?? error.message, error.node, error.opType);
  }
  const e = new Error(error.message);
  e.name = error.name;
  return e;
}

export interface RunOptions {
  /** Output names to compute (default: all). */
  outputs?: string[];
  /** Cancels the run if it has not started, or drops its result if it is running. */
  signal?: AbortSignal;
  /**
   * Move the feeds' buffers to the worker instead of copying them (saves a copy of large
   * inputs; the caller's typed arrays are detached, i.e. become empty, once the run is sent).
   */
  transfer?: boolean;
}

/** The distinct buffers behind the feeds. */
function transferList(feeds: TensorMap): ArrayBuffer[] {
  return [...new Set(Object.values(feeds).map((t) => t.data.buffer as ArrayBuffer))];
}

export class RemoteSession {
  /** @internal */
  constructor(
    private readonly worker: InferenceWorker,
    readonly name: string,
    private readonly id: number,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  run(feeds: TensorMap, options: RunOptions = {}): Promise<TensorMap> {
    const body: RequestBody = { type: 'run', session: this.id, feeds, ...(options.outputs ? { outputs: options.outputs } : {}) };
    return this.worker.request(body, this.name, options.signal, options.transfer ? transferList(feeds) : undefined) as Promise<TensorMap>;
  }

  /**
   * Inputs kept in the worker and supplied to every later run (e.g. LoRA weights); a run's own
   * feeds win. `transfer` moves the buffers instead of copying them, as for run(); `views` feed
   * inputs from arrays kept in the worker (InferenceWorker.keep) without sending anything.
   */
  bind(feeds: TensorMap, options: { transfer?: boolean; views?: Record<string, KeptView> } = {}): Promise<void> {
    const body: RequestBody = { type: 'bind', session: this.id, feeds, ...(options.views === undefined ? {} : { views: options.views }) };
    return this.worker.request(body, this.name, undefined, options.transfer ? transferList(feeds) : undefined) as Promise<void>;
  }

  release(): Promise<void> {
    return this.worker.request({ type: 'release', session: this.id }, this.name) as Promise<void>;
  }
}

export class InferenceWorker {
  private readonly worker: Worker;
  private readonly queue: Job[] = [];
  /** The job whose request is in the worker; its caller may already have been released (abort, close). */
  private active: Job | null = null;
  private nextId = 1;
  private failure: Error | null = null;
  private idleWaiters: (() => void)[] = [];
  private closing: Promise<void> | null = null;

  constructor() {
    this.worker = spawnWorker();
    this.worker.unref();
    this.worker.on('message', (response: WorkerResponse) => this.settle(response));
    this.worker.on('error', (error) => this.fail(new InferenceWorkerError(`inference worker crashed: ${error.message}`)));
    this.worker.on('exit', (code) => {
      this.fail(new InferenceWorkerError(`inference worker exited (code ${code})`));
      this.markIdle();
    });
  }

  /** Creates a session in the worker from a built graph. */
  async load(model: BuiltModel, settings: SessionSettings = {}): Promise<RemoteSession> {
    const result = (await this.request(
      {
        type: 'load',
        name: model.name,
        bytes: model.bytes,
        model: { externalDataFolder: model.externalDataFolder, castsLowPrecisionInitializers: model.castsLowPrecisionInitializers },
        settings,
      },
      model.name,
    )) as LoadResult;
    return new RemoteSession(this, model.name, result.session, result.inputNames, result.outputNames);
  }

  /**
   * Keeps a copy of `arrays` in the worker under `key`, for binds by reference (`views`): data
   * bound many times (a LoRA) then crosses the thread boundary once.
   */
  async keep(key: string, arrays: Float32Array[]): Promise<void> {
    await this.request({ type: 'keep', key, arrays }, 'kept arrays');
  }

  /** Drops kept arrays (inputs already bound to them stay valid). */
  async forget(key: string): Promise<void> {
    await this.request({ type: 'forget', key }, 'kept arrays');
  }

  /** @internal */
  request(body: RequestBody, model: string, signal?: AbortSignal, transfer?: ArrayBuffer[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.failure !== null) return reject(this.failure);
      if (signal?.aborted) return reject(new RunCancelledError(`model "${model}": run`));
      const job: Job = { id: this.nextId++, body, model, signal, resolve, reject, transfer };
      if (signal !== undefined) {
        job.onAbort = () => this.abort(job);
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.pump();
    });
  }

  private abort(job: Job): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    job.reject(new RunCancelledError(`model "${job.model}": run`));
  }

  private pump(): void {
    if (this.active !== null) return;
    const job = this.queue.shift();
    if (job === undefined) {
      this.worker.unref();
      return;
    }
    this.active = job;
    this.worker.ref();
    this.worker.postMessage({ ...job.body, id: job.id } as WorkerRequest, job.transfer);
  }

  private release(job: Job): void {
    if (job.onAbort !== undefined) job.signal?.removeEventListener('abort', job.onAbort);
  }

  private markIdle(): void {
    this.active = null;
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private settle(response: WorkerResponse): void {
    const job = this.active;
    if (job === null || job.id !== response.id) return;
    this.markIdle();
    this.release(job);
    if (response.ok) job.resolve(response.result);
    else job.reject(deserializeError(response.error));
    if (this.failure === null) this.pump();
  }

  private fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    for (const job of [...(this.active ? [this.active] : []), ...this.queue.splice(0)]) {
      this.release(job);
      job.reject(error);
    }
  }

  /**
   * Stops the worker: pending requests are rejected at once; a run already in the worker
   * is allowed to end (terminating a thread inside onnxruntime aborts the process), then
   * every session is released and the thread exits.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const alreadyFailed = this.failure !== null;
      this.fail(new InferenceWorkerError('inference worker closed'));
      if (alreadyFailed && this.active === null) return;
      if (this.active !== null) await new Promise<void>((wake) => this.idleWaiters.push(wake));
      const shutdown: Job = {
        id: this.nextId++,
        body: { type: 'shutdown' },
        model: 'inference worker',
        resolve: () => undefined,
        reject: () => undefined,
      };
      this.active = shutdown;
      this.worker.ref();
      this.worker.postMessage({ ...shutdown.body, id: shutdown.id } as WorkerRequest);
      await new Promise<void>((wake) => this.idleWaiters.push(wake));
      await this.worker.terminate();
    })();
    return this.closing;
  }
}
