import { afterAll } from 'vitest';
import type { BuiltModel } from '../../src/onnx/graph.js';
import { InferenceWorker } from '../../src/onnx/runner.js';
import type { SessionSettings } from '../../src/onnx/session-options.js';
import type { TensorMap } from '../../src/onnx/tensor-data.js';

/** One inference worker per test file, closed after the file's tests. */
export function useWorker(): () => InferenceWorker {
  let worker: InferenceWorker | undefined;
  afterAll(async () => {
    await worker?.close();
  });
  return () => (worker ??= new InferenceWorker());
}

/** Loads a model, runs it once and releases it. */
export async function runOnce(worker: InferenceWorker, model: BuiltModel, feeds: TensorMap, settings?: SessionSettings): Promise<TensorMap> {
  const session = await worker.load(model, settings);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

export function outputData(outputs: TensorMap, name: string): Float32Array {
  const tensor = outputs[name];
  if (tensor === undefined) throw new Error(`no output "${name}"`);
  return tensor.data as Float32Array;
}
