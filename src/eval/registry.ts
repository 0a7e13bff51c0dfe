/**
 * Components that `flux-lora eval` can evaluate on a golden case file. Each model issue
 * registers its component here (transformer, t5, clip, vae-encode, ...).
 */

export interface EvalRequest {
  /** Checkpoint file or folder of the component. */
  model: string;
  /** Golden case file (.safetensors) with inputs named `case<k>.<name>`. */
  casePath: string;
  /** Where to write the outputs, under the names the golden README uses. */
  outPath: string;
}

export interface Evaluator {
  component: string;
  summary: string;
  evaluate(request: EvalRequest): Promise<void>;
}

const evaluators = new Map<string, Evaluator>();

export function registerEvaluator(evaluator: Evaluator): void {
  if (evaluators.has(evaluator.component)) throw new Error(`evaluator "${evaluator.component}" registered twice`);
  evaluators.set(evaluator.component, evaluator);
}

export function findEvaluator(component: string): Evaluator | undefined {
  return evaluators.get(component);
}

export function listEvaluators(): Evaluator[] {
  return [...evaluators.values()].sort((a, b) => a.component.localeCompare(b.component));
}
