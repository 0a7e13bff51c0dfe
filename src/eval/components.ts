import { pipelineEvaluator } from './pipeline-eval.js';
import type { Evaluator } from './types.js';
import { safetyClipEvaluator, safetyVitEvaluator } from './safety-eval.js';
import { clipEvaluator, t5Evaluator } from './text-eval.js';
import { transformerEvaluator } from './transformer-eval.js';
import { vaeDecodeEvaluator, vaeEncodeEvaluator } from './vae-eval.js';

/** Every component `flux-lora eval` knows, one entry per model definition. */
export const EVALUATORS: readonly Evaluator[] = [
  transformerEvaluator('exact'),
  transformerEvaluator('int8'),
  transformerEvaluator('int4'),
  vaeEncodeEvaluator,
  vaeDecodeEvaluator,
  t5Evaluator,
  clipEvaluator,
  pipelineEvaluator,
  safetyClipEvaluator,
  safetyVitEvaluator,
];
