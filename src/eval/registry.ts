/**
 * Components that `flux-lora eval` can evaluate on a golden case file. Each model adds
 * its evaluator to EVALUATORS in ./components.ts.
 */
import { EVALUATORS } from './components.js';

export interface EvalRequest {
  /** Checkpoint file or folder of the component. */
  model: string;
  /** Golden case file (.safetensors) with inputs named `case<k>.<name>`. */
  casePath: string;
  /** Where to write the outputs, under the names the golden README uses. */
  outPath: string;
  /** LoRA files with their strengths (components that take LoRAs only). */
  loras: { path: string; scale: number }[];
}

export interface Evaluator {
  component: string;
  summary: string;
  acceptsLoras: boolean;
  evaluate(request: EvalRequest): Promise<void>;
}

export function findEvaluator(component: string): Evaluator | undefined {
  return EVALUATORS.find((e) => e.component === component);
}

export function listEvaluators(): Evaluator[] {
  return [...EVALUATORS].sort((a, b) => a.component.localeCompare(b.component));
}
