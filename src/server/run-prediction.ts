/**
 * Running one prediction on a predictor, shared by the single server and the workers of a
 * scaled deployment: the predictor's reports become the prediction's log, progress and start,
 * and its outcome ends the prediction (outputs delivered, or failed, or canceled).
 */
import { RunCancelledError } from '../onnx/errors.js';
import type { PredictionResult, PredictOptions } from '../predictor/predictor.js';
import type { OutputFile } from './outputs.js';
import type { Prediction } from './prediction.js';

export type Outcome = { result: PredictionResult } | { error: unknown };

/** The predictor's options for a prediction: it only reports on the one it runs, so a report means it has started. */
export function predictOptions(prediction: Prediction, outputDir: string): PredictOptions {
  return {
    outputDir,
    signal: prediction.abort.signal,
    log: (line) => {
      prediction.start();
      prediction.log(line);
    },
    onProgress: (progress) => {
      prediction.start();
      prediction.reportProgress(progress);
    },
  };
}

/** Ends the prediction with the predictor's outcome, its output files handed to `deliver`. */
export async function endPrediction(prediction: Prediction, outcome: Outcome, deliver: (files: string[]) => Promise<OutputFile[]>): Promise<void> {
  try {
    if ('error' in outcome) throw outcome.error;
    const outputs = await deliver(outcome.result.files);
    prediction.succeed(outputs, { ...outcome.result.metrics, seed: outcome.result.seed });
  } catch (error) {
    if (prediction.abort.signal.aborted || error instanceof RunCancelledError) prediction.cancel();
    else prediction.fail(error instanceof Error ? error.message : String(error));
  }
}
