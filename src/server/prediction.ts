/**
 * One prediction's state as the HTTP server tracks it: status transitions, logs with
 * tqdm-style progress lines, output files and metrics, and the events webhooks and SSE
 * streams follow. Status values are only those both Cog and the Replicate client accept.
 */
import { readFile } from 'node:fs/promises';
import type { Progress } from '../predictor/predictor.js';
import type { OutputFile, OutputTarget } from './outputs.js';
import { progressLine } from './progress.js';

export type Status = 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled';
export type TerminalStatus = Extract<Status, 'succeeded' | 'failed' | 'canceled'>;
export const STATUSES: readonly Status[] = ['starting', 'processing', 'succeeded', 'failed', 'canceled'];

export type PredictionEvent =
  { type: 'start' } | { type: 'log'; line: string } | { type: 'progress'; progress: Progress } | { type: 'output' } | { type: 'completed' };

export type WebhookEventName = 'start' | 'output' | 'logs' | 'completed';
export const WEBHOOK_EVENTS: readonly WebhookEventName[] = ['start', 'output', 'logs', 'completed'];

export interface WebhookSpec {
  url: string;
  events: ReadonlySet<WebhookEventName>;
  /** Headers copied from the create request (trace context). */
  headers: Record<string, string>;
}

export interface PredictionSpec {
  id: string;
  /** Unguessable key of the prediction's public resources (output files, SSE stream). */
  key: string;
  /** Which API created it: its webhooks carry that API's view. */
  api: 'cog' | 'replicate';
  input: unknown;
  /** Replicate's model ("owner/name") and version as the request addressed them. */
  model?: string;
  version?: string;
  webhook?: WebhookSpec;
  output: OutputTarget;
  /** Base URL of this server as the client reached it (for urls.* and served outputs). */
  baseUrl: string;
  /** Folder the predictor writes the outputs into. */
  dir: string;
}

export type Metrics = Record<string, number>;

/** The state of a prediction that a saved copy carries (beside its spec). */
export interface SavedState {
  status: Status;
  createdAt: Date;
  startedAt: Date | undefined;
  completedAt: Date | undefined;
  history: Prediction['history'];
  outputs: OutputFile[] | null;
  error: string | null;
  metrics: Metrics | null;
}

export class Prediction {
  status: Status = 'starting';
  createdAt = new Date();
  startedAt: Date | undefined;
  completedAt: Date | undefined;
  /** Log lines and progress steps in the order they came (SSE streams replay it). */
  readonly history: Extract<PredictionEvent, { type: 'log' | 'progress' }>[] = [];
  outputs: OutputFile[] | null = null;
  error: string | null = null;
  metrics: Metrics | null = null;
  /** The bytes of an output file (a scaled deployment reads them from Redis). */
  readOutput: (file: OutputFile) => Promise<Buffer> = (file) => readFile(file.path);
  /** Aborted by cancel (and at shutdown); the predictor and uploads follow it. */
  readonly abort = new AbortController();
  /** Resolves once the prediction is terminal. */
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;
  private readonly listeners = new Set<(event: PredictionEvent) => void>();

  constructor(readonly spec: PredictionSpec) {
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  get id(): string {
    return this.spec.id;
  }

  get logs(): string[] {
    return this.history.flatMap((event) => (event.type === 'log' ? [event.line] : []));
  }

  get terminal(): boolean {
    return this.status === 'succeeded' || this.status === 'failed' || this.status === 'canceled';
  }

  /** Calls `listener` with every later event; returns the unsubscribe function. */
  subscribe(listener: (event: PredictionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Puts back the state of a prediction saved earlier (src/server/prediction-record.ts): a
   * terminal one is finished at once, an unfinished one goes on from there.
   */
  restore(state: SavedState): void {
    const { history, ...fields } = state;
    Object.assign(this, fields);
    this.history.push(...history);
    if (this.terminal) {
      this.listeners.clear();
      this.resolveFinished();
    }
  }

  private emit(event: PredictionEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** The predictor began running it. */
  start(): void {
    if (this.status !== 'starting') return;
    this.status = 'processing';
    this.startedAt = new Date();
    this.emit({ type: 'start' });
  }

  private record(event: Extract<PredictionEvent, { type: 'log' | 'progress' }>): void {
    if (this.terminal) return;
    this.history.push(event);
    this.emit(event);
  }

  /** Adds a log line or progress step that another process recorded (a mirror of a worker's prediction). */
  replay(event: Prediction['history'][number]): void {
    this.record(event);
  }

  /**
   * Ends it in the terminal state another process reached (timestamps, outputs and metrics as
   * that process had them), with the events a local end sends.
   */
  settle(state: Omit<SavedState, 'history'>): void {
    if (this.terminal) return;
    Object.assign(this, state);
    if (this.outputs !== null) this.emit({ type: 'output' });
    this.emit({ type: 'completed' });
    this.listeners.clear();
    this.resolveFinished();
  }

  log(line: string): void {
    this.record({ type: 'log', line });
  }

  reportProgress(progress: Progress): void {
    this.log(progressLine(progress));
    this.record({ type: 'progress', progress });
  }

  succeed(outputs: OutputFile[], metrics: Metrics): void {
    if (this.terminal) return;
    this.outputs = outputs;
    this.emit({ type: 'output' });
    this.complete('succeeded', metrics);
  }

  fail(message: string): void {
    if (this.terminal) return;
    this.error = message;
    this.complete('failed', null);
  }

  cancel(): void {
    this.abort.abort();
    if (!this.terminal) this.complete('canceled', null);
  }

  private complete(status: TerminalStatus, metrics: Metrics | null): void {
    this.status = status;
    this.completedAt = new Date();
    const seconds = (from: Date) => ((this.completedAt as Date).getTime() - from.getTime()) / 1000;
    this.metrics = { predict_time: this.startedAt === undefined ? 0 : seconds(this.startedAt), ...metrics, total_time: seconds(this.createdAt) };
    this.emit({ type: 'completed' });
    this.listeners.clear();
    this.resolveFinished();
  }
}
