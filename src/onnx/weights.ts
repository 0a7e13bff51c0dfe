/** Bridges safetensors tensors into graphs as external initializers (bytes stay in the file). */
import type { TensorInfo } from '../weights/safetensors.js';
import { dtypeFromSafetensors, isLowPrecisionFloat } from './dtype.js';
import type { ExternalTensorRef, GraphBuilder, Value } from './graph.js';
import { cast } from './ops/shape-ops.js';

export function externalRef(info: TensorInfo): ExternalTensorRef {
  return {
    file: info.file,
    offset: info.offset,
    byteLength: info.byteLength,
    dtype: dtypeFromSafetensors(info.dtype),
    shape: info.shape,
  };
}

/**
 * A float32 view of a checkpoint tensor. float32 tensors are used as stored; bf16/f16/f8
 * tensors get an in-graph Cast, so the file stays the only copy of the stored weights
 * (the session runner disables the constant folding that would materialize the cast).
 */
export function floatWeight(g: GraphBuilder, name: string, info: TensorInfo): Value {
  const stored = g.external(name, externalRef(info));
  if (!isLowPrecisionFloat(stored.dtype)) {
    if (stored.dtype !== 'float32') throw new TypeError(`${info.file}: tensor "${info.name}" is ${info.dtype}, not a float type`);
    return stored;
  }
  return cast(g, stored, 'float32', `${name}/to_float32`);
}
