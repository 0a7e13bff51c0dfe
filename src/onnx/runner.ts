/**
 * The handle to the engine: a child process that hosts the onnxruntime sessions, supervised
 * here. Requests are sent one at a time, so a run that is aborted before it starts never
 * runs, and an abort during a run takes effect when that run (one step) ends: the caller is
 * released at once and the result is dropped. A crash, kill or out-of-memory end of the engine
 * fails only the requests in flight (EngineStoppedError naming the signal and the model that
 * was running); the engine then restarts by itself with backoff, and sessions of the stopped
 * engine refuse to run (whoever held them loads again: see onStopped).
 */
import type { ChildProcess } from 'node:child_process';
import { forkSibling } from './child-module.js';
import type { BuiltModel } from './graph.js';
import { EngineStoppedError, InferenceWorkerError, OnnxRuntimeError, RunCancelledError } from './errors.js';
import type { SessionSettings } from './session-options.js';
import type { TensorMap } from './tensor-data.js';
import type { KeptView, LoadResult, SerializedError, WorkerRequest, WorkerResponse } from './worker-protocol.js';

type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

interface Job {
  id: number;
  body: RequestBody;
  /** Buffers the caller gives up: detached once the request is sent. */
  transfer?: ArrayBuffer[];
  model: string;
  signal?: AbortSignal;
  resolve(value: unknown): void;
  reject(error: Error): void;
  onAbort?: () => void;
}

/** Waits before restarting a stopped engine; the delay doubles per stop in a row (an engine that ran STABLE_MS resets it). */
const RESTART_DELAYS_MS = [250, 500, 1000, 2000, 5000];
const STABLE_MS = 30_000;

/**
 * Tensors as received over IPC are views into the one buffer of their message; each gets a
 * buffer of its own, so `data.buffer` is the tensor's bytes (and transferring it frees only it).
 */
function ownBuffers(tensors: TensorMap): TensorMap {
  const own: TensorMap = {};
  for (const [name, t] of Object.entries(tensors)) {
    own[name] = t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength ? t : { ...t, data: t.data.slice() as typeof t.data };
  }
  return own;
}

/** Gives up the buffers' memory the way a transfer would: the caller's typed arrays over them become empty. */
function detach(buffers: ArrayBuffer[]): void {
  if (buffers.length > 0) structuredClone(buffers, { transfer: buffers });
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

/** The distinct buffers wholly behind the feeds (a buffer shared with other arrays is left alone). */
function transferList(feeds: TensorMap): ArrayBuffer[] {
  const whole = Object.values(feeds).filter((t) => t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength);
  return [...new Set(whole.map((t) => t.data.buffer as ArrayBuffer))];
}

export type EngineState = 'running' | 'restarting' | 'closed';

export interface EngineStatus {
  state: EngineState;
  /** How many times the engine stopped unexpectedly and was restarted. */
  restarts: number;
  /** The last unexpected stop, e.g. "SIGKILL". */
  lastStop?: string;
  /** The engine's process id while it runs. */
  pid?: number;
}

export class RemoteSession {
  /** @internal */
  constructor(
    private readonly worker: InferenceWorker,
    readonly name: string,
    private readonly id: number,
    /** The engine process it lives in (sessions do not survive a restart). */
    private readonly generation: number,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  run(feeds: TensorMap, options: RunOptions = {}): Promise<TensorMap> {
    const body: RequestBody = { type: 'run', session: this.id, feeds, ...(options.outputs ? { outputs: options.outputs } : {}) };
    return this.worker.request(body, this.name, options.signal, options.transfer ? transferList(feeds) : undefined, this.generation) as Promise<TensorMap>;
  }

  /**
   * Inputs kept in the engine and supplied to every later run (e.g. LoRA weights); a run's own
   * feeds win. `transfer` gives up the buffers, as for run(); `views` feed inputs from arrays
   * kept in the engine (InferenceWorker.keep) without sending anything.
   */
  bind(feeds: TensorMap, options: { transfer?: boolean; views?: Record<string, KeptView> } = {}): Promise<void> {
    const body: RequestBody = { type: 'bind', session: this.id, feeds, ...(options.views === undefined ? {} : { views: options.views }) };
    return this.worker.request(body, this.name, undefined, options.transfer ? transferList(feeds) : undefined, this.generation) as Promise<void>;
  }

  /** Releases the session; nothing to do when its engine has stopped since. */
  async release(): Promise<void> {
    if (this.generation !== this.worker.generation) return;
    await this.worker.request({ type: 'release', session: this.id }, this.name, undefined, undefined, this.generation);
  }
}

export class InferenceWorker {
  private engine: ChildProcess | null = null;
  private readonly queue: Job[] = [];
  /** The job whose request is in the engine; its caller may already have been released (abort, close). */
  private active: Job | null = null;
  private nextId = 1;
  private closed: Error | null = null;
  private idleWaiters: (() => void)[] = [];
  private closing: Promise<void> | null = null;
  private readonly stopListeners: ((error: EngineStoppedError) => void)[] = [];
  private stopsInARow = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Counts engine stops: a session belongs to the engine it was loaded in. */
  generation = 0;
  private readonly stats: { restarts: number; lastStop?: string } = { restarts: 0 };

  constructor() {
    this.start();
  }

  /** The engine's state, for health checks. */
  get status(): EngineStatus {
    const state: EngineState = this.closed !== null ? 'closed' : this.engine === null ? 'restarting' : 'running';
    return { state, ...this.stats, ...(this.engine?.pid === undefined ? {} : { pid: this.engine.pid }) };
  }

  /** Called when the engine stops unexpectedly: every session and kept array is gone (load again). */
  onStopped(listener: (error: EngineStoppedError) => void): void {
    this.stopListeners.push(listener);
  }

  private start(): void {
    const engine = forkSibling('inference-worker');
    this.engine = engine;
    this.startedAt = Date.now();
    engine.on('message', (response: WorkerResponse) => this.settle(response));
    engine.on('exit', (code, signal) => this.exited(engine, signal ?? `exit code ${code ?? '?'}`));
    engine.on('error', () => undefined); // a failed spawn also ends in 'exit'
    this.idle();
    this.pump();
  }

  private exited(engine: ChildProcess, reason: string): void {
    if (this.engine !== engine) return;
    this.engine = null;
    this.generation++;
    const running = this.active;
    this.active = null;
    for (const wake of this.idleWaiters.splice(0)) wake();
    if (this.closed !== null) return;
    const error = new EngineStoppedError(reason, running === null ? 'while idle' : `running "${running.model}"`);
    this.stats.restarts++;
    this.stats.lastStop = reason;
    for (const job of [...(running === null ? [] : [running]), ...this.queue.splice(0)]) {
      this.unlisten(job);
      job.reject(error);
    }
    for (const listener of this.stopListeners) listener(error);
    if (Date.now() - this.startedAt >= STABLE_MS) this.stopsInARow = 0;
    const delay = RESTART_DELAYS_MS[Math.min(this.stopsInARow++, RESTART_DELAYS_MS.length - 1)] as number;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.closed === null) this.start();
    }, delay);
    this.restartTimer.unref();
  }

  /** Creates a session in the engine from a built graph. */
  async load(model: BuiltModel, settings: SessionSettings = {}): Promise<RemoteSession> {
    const generation = this.generation;
    const result = (await this.request(
      {
        type: 'load',
        name: model.name,
        bytes: model.bytes,
        model: { externalDataFolder: model.externalDataFolder, castsLowPrecisionInitializers: model.castsLowPrecisionInitializers },
        settings,
      },
      model.name,
      undefined,
      undefined,
      generation,
    )) as LoadResult;
    return new RemoteSession(this, model.name, result.session, generation, result.inputNames, result.outputNames);
  }

  /**
   * Keeps a copy of `arrays` in the engine under `key`, for binds by reference (`views`): data
   * bound many times (a LoRA) then crosses the process boundary once.
   */
  async keep(key: string, arrays: Float32Array[]): Promise<void> {
    await this.request({ type: 'keep', key, arrays }, 'kept arrays');
  }

  /** Drops kept arrays (inputs already bound to them stay valid). */
  async forget(key: string): Promise<void> {
    await this.request({ type: 'forget', key }, 'kept arrays');
  }

  /**
   * @internal `generation`: the engine the request is for (its sessions); a request made for
   * a stopped engine fails at once.
   */
  request(body: RequestBody, model: string, signal?: AbortSignal, transfer?: ArrayBuffer[], generation?: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.closed !== null) return reject(this.closed);
      if (generation !== undefined && generation !== this.generation) {
        return reject(new EngineStoppedError(this.stats.lastStop ?? 'restarted', `since "${model}" was loaded; load it again`));
      }
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
    const engine = this.engine;
    if (this.active !== null || engine === null) return;
    const job = this.queue.shift();
    if (job === undefined) return this.idle();
    this.active = job;
    engine.ref();
    engine.channel?.ref();
    engine.send({ ...job.body, id: job.id } as WorkerRequest);
    detach(job.transfer ?? []);
  }

  /** An idle engine does not keep the process alive. */
  private idle(): void {
    this.engine?.unref();
    this.engine?.channel?.unref();
  }

  private unlisten(job: Job): void {
    if (job.onAbort !== undefined) job.signal?.removeEventListener('abort', job.onAbort);
  }

  private settle(response: WorkerResponse): void {
    const job = this.active;
    if (job === null || job.id !== response.id) return;
    this.active = null;
    for (const wake of this.idleWaiters.splice(0)) wake();
    this.unlisten(job);
    if (!response.ok) job.reject(deserializeError(response.error));
    else job.resolve(job.body.type === 'run' ? ownBuffers(response.result as TensorMap) : response.result);
    if (this.closed === null) this.pump();
  }

  /**
   * Stops the engine: pending requests are rejected at once; a request already in the engine
   * is allowed to end, then every session is released and the engine exits.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = new InferenceWorkerError('inference worker closed');
      if (this.restartTimer !== null) clearTimeout(this.restartTimer);
      for (const job of [...(this.active ? [this.active] : []), ...this.queue.splice(0)]) {
        this.unlisten(job);
        job.reject(this.closed);
      }
      const engine = this.engine;
      if (engine === null) return;
      if (this.active !== null) await new Promise<void>((wake) => this.idleWaiters.push(wake));
      if (this.engine !== engine) return;
      const exited = new Promise<void>((wake) => engine.once('exit', () => wake()));
      engine.ref();
      engine.send({ type: 'shutdown', id: this.nextId++ } satisfies WorkerRequest);
      await exited;
    })();
    return this.closing;
  }
}
