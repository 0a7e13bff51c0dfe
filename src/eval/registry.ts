/**
 * Components that `flux-lora eval` can evaluate on a golden case file. Each model adds
 * its evaluator to EVALUATORS in ./components.ts.
 */
import { EVALUATORS } from './components.js';
import type { Evaluator } from './types.js';

export function findEvaluator(component: string): Evaluator | undefined {
  return EVALUATORS.find((e) => e.component === component);
}

export function listEvaluators(): Evaluator[] {
  return [...EVALUATORS].sort((a, b) => a.component.localeCompare(b.component));
}
