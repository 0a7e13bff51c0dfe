import type { Evaluator } from './registry.js';

/** Every component `flux-lora eval` knows, one entry per model definition. */
export const EVALUATORS: readonly Evaluator[] = [];
