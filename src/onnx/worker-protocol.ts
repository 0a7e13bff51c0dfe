/** Messages between InferenceWorker (main thread) and the worker entry. */
import type { ModelLoadInfo, SessionSettings } from './session-options.js';
import type { TensorMap } from './tensor-data.js';

export type WorkerRequest =
  | { id: number; type: 'load'; name: string; bytes: Uint8Array; model: ModelLoadInfo; settings: SessionSettings }
  | { id: number; type: 'run'; session: number; feeds: TensorMap; outputs?: string[] }
  | { id: number; type: 'bind'; session: number; feeds: TensorMap; views?: Record<string, KeptView> }
  | { id: number; type: 'keep'; key: string; arrays: Float32Array[] }
  | { id: number; type: 'forget'; key: string }
  | { id: number; type: 'release'; session: number }
  | { id: number; type: 'shutdown' };

/** An input fed from arrays kept in the worker (InferenceWorker.keep): `length` floats of array `array` from `offset`. */
export interface KeptView {
  key: string;
  array: number;
  offset: number;
  length: number;
  dims: number[];
}

export interface LoadResult {
  session: number;
  inputNames: string[];
  outputNames: string[];
}

export interface SerializedError {
  name: string;
  message: string;
  model?: string;
  phase?: 'load' | 'run';
  detail?: string;
  node?: string;
  opType?: string;
}

export type WorkerResponse = { id: number; ok: true; result: LoadResult | TensorMap | null } | { id: number; ok: false; error: SerializedError };
