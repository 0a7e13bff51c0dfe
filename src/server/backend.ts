/**
 * What the HTTP routes need of whatever holds the predictions: the single server's own
 * PredictionService (predictor and engine in this process), or an API node of a scaled
 * deployment (src/scale/: state in Redis, inference on workers). Lookups are asynchronous
 * because the latter reads Redis.
 */
import type { Prediction } from './prediction.js';
import type { Admission, CreateRequest, Health, SetupState } from './service.js';

export interface PredictionBackend {
  readonly setup: SetupState;
  health(): Health;
  /** Extra fields of /health-check (the engine's state, or the cluster's). */
  healthDetails(): Record<string, unknown>;
  /** Resolves once setup has finished (either way). */
  whenReady(): Promise<void>;
  /** Validates, admits and starts a prediction (InputValidationError, ServiceError). */
  create(request: CreateRequest, admission: Admission): Promise<Prediction>;
  find(id: string): Promise<Prediction | undefined>;
  /** By the unguessable key of its public resources (outputs, event stream). */
  findByKey(key: string): Promise<Prediction | undefined>;
  /** The predictions remembered, newest first, `count` from `offset`, and how many there are. */
  list(offset: number, count: number): Promise<{ predictions: Prediction[]; total: number }>;
  /** Cancels a prediction that has not finished (a running one stops after its current step). */
  cancel(prediction: Prediction): Promise<void>;
  /** Stops taking predictions, lets accepted ones finish for up to `deadlineMs`, and releases everything. */
  shutdown(deadlineMs: number): Promise<void>;
}
