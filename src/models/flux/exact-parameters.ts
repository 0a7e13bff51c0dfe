/**
 * Exact mode: every linear computes x·Wᵀ + b in float32 from the stored weights, which
 * stay in the checkpoint files as external data (bf16/f16 weights are cast in-graph).
 */
import type { GraphBuilder, Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import { externalRef, floatWeight } from '../../onnx/weights.js';
import type { FluxCheckpoint } from './checkpoint.js';
import type { FluxParameters } from './graph.js';
import type { LinearSpec } from './layout.js';

/** A canonical tensor as float32; `anchor` delays a low-precision cast until that activation exists. */
export function storedFloat(g: GraphBuilder, checkpoint: FluxCheckpoint, name: string, anchor?: Value): Value {
  const { info, rows } = checkpoint.locate(name);
  return floatWeight(g, name, externalRef(info, rows), anchor);
}

export function exactParameters(checkpoint: FluxCheckpoint): FluxParameters {
  return {
    linear(g: GraphBuilder, x: Value, spec: LinearSpec): Value {
      const weight = storedFloat(g, checkpoint, `${spec.name}.weight`, x);
      return op.add(g, op.matmulTransposed(g, x, weight), storedFloat(g, checkpoint, `${spec.name}.bias`));
    },
    vector: (g, name) => storedFloat(g, checkpoint, name),
  };
}
