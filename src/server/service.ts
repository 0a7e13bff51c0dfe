/**
 * The predictions behind both APIs: sets the predictor up, admits predictions within capacity
 * (one running; a bounded queue of waiting ones, which the predictor runs in order), follows
 * each to its terminal state and delivers its outputs, and drains on shutdown.
 *
 * Predictor.predict validates a request before it queues it, so its validation rejection has
 * settled by the next macrotask: that is how an invalid request is told from a failed run.
 */
import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { PredictionBackend } from './backend.js';
import type { EngineStatus } from '../onnx/runner.js';
import type { ResolvedInput } from '../predictor/inputs.js';
import { Predictor, type PredictorOptions } from '../predictor/predictor.js';
import { checkInput } from './input-check.js';
import type { PredictionJournal } from './journal.js';
import { deliverOutputs, type OutputTarget } from './outputs.js';
import { Prediction, type WebhookSpec } from './prediction.js';
import { fromRecord, toRecord } from './prediction-record.js';
import { endPrediction, predictOptions, type Outcome } from './run-prediction.js';
import { PredictionStore, type RetentionOptions } from './store.js';
import { Webhooks, type WebhookOptions } from './webhooks.js';
import { within } from './within.js';

/** How often a running prediction's new log lines are saved to the journal. */
const LOG_SAVE_MS = 250;

export interface ServiceOptions {
  predictor: PredictorOptions & { imageSource: NonNullable<PredictorOptions['imageSource']> & { maxPixels: number } };
  /** Predictions that may wait behind the running one. */
  queueSize: number;
  retention: RetentionOptions;
  /** Folder holding one sub-folder of outputs per prediction (removed at shutdown unless there is a journal). */
  workDir: string;
  /** Where predictions are saved as they change, to be taken up again by the next server (its outputsDir is workDir). */
  journal?: PredictionJournal;
  webhooks: WebhookOptions;
  log: FastifyBaseLogger;
  /** The webhook body of a prediction (the view of the API that created it). */
  render(prediction: Prediction): Promise<object>;
}

export interface CreateRequest {
  id?: string;
  input: unknown;
  api: 'cog' | 'replicate';
  model?: string;
  version?: string;
  webhook?: WebhookSpec;
  output: OutputTarget;
  baseUrl: string;
}

/** `sync`: only when nothing runs or waits (Cog); `queued`: when the queue has room. */
export type Admission = 'sync' | 'queued';

export class ServiceError extends Error {
  constructor(
    /** `unavailable`: a part the server needs (Redis) cannot be reached. */
    readonly reason: 'busy' | 'queue-full' | 'not-ready' | 'stopping' | 'duplicate' | 'unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

export interface SetupState {
  status: 'starting' | 'succeeded' | 'failed';
  startedAt: Date;
  completedAt?: Date;
  logs: string[];
}

/** Cog's states; UNHEALTHY while the inference engine restarts after it stopped. */
export type Health = 'STARTING' | 'READY' | 'BUSY' | 'SETUP_FAILED' | 'UNHEALTHY';

/** 26 characters of base32, like Replicate's prediction ids. */
export function newId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return [...randomBytes(26)].map((b) => alphabet[b & 31]).join('');
}

/** The unguessable key of a prediction's public resources (output files, SSE stream). */
export function newKey(): string {
  return randomBytes(16).toString('hex');
}

export class PredictionService implements PredictionBackend {
  readonly store: PredictionStore;
  readonly setup: SetupState = { status: 'starting', startedAt: new Date(), logs: [] };
  private readonly webhooks: Webhooks;
  private predictor: Predictor | undefined;
  private readonly ready: Promise<void>;
  /** Predictions handed to the predictor and not settled there, in its order. */
  private readonly pending = new Set<Prediction>();
  /** Completions under way (the predictor's answer, then output delivery). */
  private readonly completions = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;
  /** Bytes of each finished prediction's output files (the retention bound counts them). */
  private readonly outputBytes = new WeakMap<Prediction, number>();
  /** Predictions whose `completed` webhook is not delivered (nor given up) yet. */
  private readonly webhooksDue = new Set<string>();

  constructor(private readonly options: ServiceOptions) {
    const { journal } = options;
    this.store = new PredictionStore(options.retention, (prediction) => journal?.remove(prediction.id));
    this.webhooks = new Webhooks(options.webhooks, options.log);
    const queued = this.restore();
    this.ready = this.startPredictor().then(() => this.resume(queued));
  }

  /**
   * Takes up the journal's predictions: finished ones are remembered (and a `completed` webhook
   * still due is sent), the one that was running fails, those waiting are returned to run.
   */
  private restore(): Prediction[] {
    const { journal } = this.options;
    if (journal === undefined) return [];
    const rows = journal.load();
    journal.removeOrphans(new Set(rows.map((row) => row.record.key)));
    const queued: Prediction[] = [];
    for (const { record, outputBytes, webhookDue } of rows) {
      const prediction = fromRecord(record, join(this.options.workDir, record.key));
      if (prediction.terminal) {
        this.store.add(prediction);
        this.store.retain(prediction, outputBytes);
        if (webhookDue) {
          this.webhooksDue.add(prediction.id);
          this.webhooks.redeliver(
            prediction,
            () => this.options.render(prediction),
            () => this.webhookSettled(prediction),
          );
        }
      } else {
        this.track(prediction);
        if (prediction.status === 'processing') prediction.fail('interrupted by restart');
        else queued.push(prediction);
      }
    }
    if (rows.length > 0) this.options.log.info(`restored ${rows.length} predictions (${queued.length} waiting to run) from ${journal.dir}`);
    return queued;
  }

  /** Runs the predictions a restart found waiting, in their order (or fails them when setup failed). */
  private async resume(queued: Prediction[]): Promise<void> {
    for (const prediction of queued) {
      const predictor = this.predictor;
      if (predictor === undefined) {
        prediction.fail(`setup failed: ${this.setup.logs.at(-1) ?? ''}`);
        continue;
      }
      try {
        this.submit(predictor, prediction, await checkInput(prediction.spec.input, (raw) => predictor.validate(raw), this.options.predictor.imageSource));
      } catch (error) {
        prediction.fail((error as Error).message);
      }
    }
  }

  /** Remembers a prediction, saves it at every change, retains it once finished and sends its webhooks. */
  private track(prediction: Prediction): void {
    this.store.add(prediction);
    this.persist(prediction);
    // Status changes are saved at once; log lines and progress steps at most every LOG_SAVE_MS (a crash
    // loses that much of the log of the one prediction it fails anyway).
    let logSave: NodeJS.Timeout | undefined;
    prediction.subscribe((event) => {
      if (event.type === 'log' || event.type === 'progress') {
        logSave ??= setTimeout(() => {
          logSave = undefined;
          this.persist(prediction);
        }, LOG_SAVE_MS);
        return;
      }
      clearTimeout(logSave);
      logSave = undefined;
      if (event.type === 'completed') {
        if (prediction.spec.webhook?.events.has('completed') === true) this.webhooksDue.add(prediction.id);
        this.store.retain(prediction, this.outputBytes.get(prediction));
      }
      this.persist(prediction);
    });
    this.webhooks.attach(
      prediction,
      () => this.options.render(prediction),
      () => this.webhookSettled(prediction),
    );
  }

  private persist(prediction: Prediction): void {
    if (this.store.get(prediction.id) !== prediction) return;
    this.options.journal?.save(toRecord(prediction), this.outputBytes.get(prediction) ?? 0, this.webhooksDue.has(prediction.id));
  }

  private webhookSettled(prediction: Prediction): void {
    this.webhooksDue.delete(prediction.id);
    if (this.store.get(prediction.id) === prediction) this.options.journal?.webhookSettled(prediction.id);
  }

  private async startPredictor(): Promise<void> {
    const log = this.options.log;
    try {
      this.predictor = await Predictor.create({
        ...this.options.predictor,
        log: (line) => {
          if (this.setup.status === 'starting') this.setup.logs.push(line);
          log.info(line);
        },
      });
      this.setup.status = 'succeeded';
      log.info('setup succeeded');
    } catch (error) {
      this.setup.logs.push((error as Error).message);
      this.setup.status = 'failed';
      log.error(`setup failed: ${(error as Error).message}`);
    }
    this.setup.completedAt = new Date();
  }

  /** The inference engine's state (absent before setup succeeded). */
  engine(): EngineStatus | undefined {
    return this.predictor?.engine;
  }

  healthDetails(): Record<string, unknown> {
    const engine = this.engine();
    return engine === undefined ? {} : { engine: { state: engine.state, restarts: engine.restarts, last_stop: engine.lastStop ?? null } };
  }

  async find(id: string): Promise<Prediction | undefined> {
    return this.store.get(id);
  }

  async findByKey(key: string): Promise<Prediction | undefined> {
    return this.store.getByKey(key);
  }

  async list(offset: number, count: number): Promise<{ predictions: Prediction[]; total: number }> {
    const all = this.store.newestFirst();
    return { predictions: all.slice(offset, offset + count), total: all.length };
  }

  /** Resolves once setup has finished (either way). */
  whenReady(): Promise<void> {
    return this.ready;
  }

  health(): Health {
    if (this.setup.status === 'starting') return 'STARTING';
    if (this.setup.status === 'failed') return 'SETUP_FAILED';
    if (this.predictor?.engine.state === 'restarting') return 'UNHEALTHY';
    return this.pending.size > 0 ? 'BUSY' : 'READY';
  }

  /** Throws the ServiceError that keeps a new prediction out, if any. */
  admit(admission: Admission): void {
    if (this.stopping !== undefined) throw new ServiceError('stopping', 'the server is shutting down');
    if (this.setup.status === 'starting') throw new ServiceError('not-ready', 'setup has not finished yet; wait until GET /health-check says READY');
    if (this.setup.status === 'failed') throw new ServiceError('not-ready', `setup failed: ${this.setup.logs.at(-1) ?? ''}`);
    if (admission === 'sync' && this.pending.size > 0) throw new ServiceError('busy', 'Already running a prediction');
    if (this.pending.size > this.options.queueSize) {
      throw new ServiceError('queue-full', `the queue is full (${this.options.queueSize} predictions waiting); retry later`);
    }
  }

  /**
   * Validates, admits and starts a prediction. Throws InputValidationError for a bad input,
   * ServiceError when it cannot be taken now.
   */
  async create(request: CreateRequest, admission: Admission): Promise<Prediction> {
    this.admit(admission);
    const predictor = this.predictor as Predictor;
    const input = await checkInput(request.input, (raw) => predictor.validate(raw), this.options.predictor.imageSource);
    this.admit(admission);
    const id = request.id ?? newId();
    if (this.store.get(id) !== undefined) throw new ServiceError('duplicate', `a prediction with id "${id}" already exists`);
    const key = newKey();
    const prediction = new Prediction({ ...request, id, key, dir: join(this.options.workDir, key) });
    this.track(prediction);
    this.submit(predictor, prediction, input);
    this.options.log.info({ predictionId: id, api: request.api, status: prediction.status }, 'prediction created');
    return prediction;
  }

  private submit(predictor: Predictor, prediction: Prediction, input: ResolvedInput): void {
    this.pending.add(prediction);
    const outcome: Promise<Outcome> = predictor.enqueue(input, predictOptions(prediction, prediction.spec.dir)).then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    this.advance();
    const completion = outcome.then((o) => this.complete(prediction, o));
    this.completions.add(completion);
    void completion.finally(() => this.completions.delete(completion));
  }

  /** The first prediction in the predictor's queue is the one running. */
  private advance(): void {
    this.pending.values().next().value?.start();
  }

  private async complete(prediction: Prediction, outcome: Outcome): Promise<void> {
    this.pending.delete(prediction);
    this.advance();
    const log = this.options.log.child({ predictionId: prediction.id });
    const { id, key, output } = prediction.spec;
    // Counted before the `completed` event, which retains the prediction with its bytes.
    const deliver = async (files: string[]) => {
      const delivered = await deliverOutputs(files, output, { id, key, signal: prediction.abort.signal });
      const sizes = await Promise.all(files.map((file) => stat(file)));
      this.outputBytes.set(
        prediction,
        sizes.reduce((sum, s) => sum + s.size, 0),
      );
      return delivered;
    };
    await endPrediction(prediction, outcome, deliver);
    log.info({ status: prediction.status, error: prediction.error ?? undefined, metrics: prediction.metrics }, 'prediction finished');
  }

  /** Cancels a prediction that has not finished (a waiting one at once, a running one as soon as the predictor stops). */
  async cancel(prediction: Prediction): Promise<void> {
    if (prediction.terminal) return;
    this.options.log.info({ predictionId: prediction.id }, 'prediction canceled');
    if (prediction.status === 'starting') prediction.cancel();
    else prediction.abort.abort();
  }

  /**
   * Stops taking predictions, lets those accepted finish for up to `deadlineMs`, cancels the
   * rest, gives webhooks the time left, then releases the models and the output folders.
   */
  shutdown(deadlineMs: number): Promise<void> {
    this.stopping ??= this.drain(deadlineMs);
    return this.stopping;
  }

  private async drain(deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    await this.ready;
    const settled = async () => {
      while (this.completions.size > 0) await Promise.all(this.completions);
    };
    if (!(await within(settled(), deadlineMs))) {
      this.options.log.warn(`shutdown deadline reached: canceling ${this.store.unfinished().length} predictions`);
      for (const prediction of this.store.unfinished()) void this.cancel(prediction);
      await settled();
    }
    await this.webhooks.flush(Math.max(0, deadline - Date.now()));
    await this.predictor?.close();
    const { journal } = this.options;
    if (journal === undefined) {
      await this.store.clear();
      await rm(this.options.workDir, { recursive: true, force: true });
    } else {
      this.store.detach();
      journal.close();
    }
  }
}
