/**
 * Exact mode: every linear computes x·Wᵀ + b in float32 from the stored weights, which
 * stay in the checkpoint files as external data (bf16/f16 weights are cast in-graph).
 */
import type { GraphBuilder, Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import { externalRef, floatWeight } from '../common/stored-weights.js';
import type { FluxCheckpoint } from './checkpoint.js';
import type { FluxParameters } from './graph.js';
import type { LinearSpec } from './layout.js';

/** A canonical tensor as float32; `anchor` delays a low-precision cast until that activation exists. */
export function storedFloat(g: GraphBuilder, checkpoint: FluxCheckpoint, name: string, anchor?: Value): Value {
  const { info, rows } = checkpoint.locate(name);
  return floatWeight(g, name, externalRef(info, rows), anchor);
}

/** The stored bias of a linear, plus an optional run-time delta. */
export function linearBias(g: GraphBuilder, checkpoint: FluxCheckpoint, spec: LinearSpec, delta?: Value): Value {
  const bias = storedFloat(g, checkpoint, `${spec.name}.bias`);
  return delta === undefined ? bias : op.add(g, bias, delta, 'bias_with_delta');
}

export function exactParameters(checkpoint: FluxCheckpoint): FluxParameters {
  return {
    linear(g: GraphBuilder, x: Value, spec: LinearSpec, biasDelta?: Value): Value {
      const weight = storedFloat(g, checkpoint, `${spec.name}.weight`, x);
      return op.add(g, op.matmulTransposed(g, x, weight), linearBias(g, checkpoint, spec, biasDelta));
    },
    vector: (g, name) => storedFloat(g, checkpoint, name),
  };
}
