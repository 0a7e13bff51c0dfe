/** Bridges safetensors tensors into graphs as external initializers (bytes stay in the file). */
import { DTYPE_BYTE_SIZE, isLowPrecisionFloat, type DType } from '../../onnx/dtype.js';
import type { ExternalTensorRef, GraphBuilder, Value } from '../../onnx/graph.js';
import { add, mul } from '../../onnx/ops/elementwise.js';
import { cast, gather, reshape, shapeOf } from '../../onnx/ops/shape-ops.js';
import type { SafetensorsDType } from '../../weights/dtypes.js';
import type { TensorInfo } from '../../weights/safetensors.js';

const FROM_SAFETENSORS: Record<SafetensorsDType, DType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F8_E4M3: 'float8e4m3fn',
  F8_E5M2: 'float8e5m2',
  U8: 'uint8',
  I8: 'int8',
  I16: 'int16',
  I32: 'int32',
  I64: 'int64',
  BOOL: 'bool',
};

export function dtypeFromSafetensors(dtype: SafetensorsDType): DType {
  return FROM_SAFETENSORS[dtype] as DType;
}

/**
 * A reference to a stored tensor, or to `rows` rows of it starting at `rowStart` (a
 * contiguous byte range of a row-major tensor, e.g. the q part of a fused qkv weight).
 */
export function externalRef(info: TensorInfo, rows?: { start: number; count: number }): ExternalTensorRef {
  const dtype = dtypeFromSafetensors(info.dtype);
  if (rows === undefined) {
    return { file: info.file, offset: info.offset, byteLength: info.byteLength, dtype, shape: info.shape };
  }
  const [total, ...rest] = info.shape;
  if (total === undefined || rows.start < 0 || rows.count < 0 || rows.start + rows.count > total) {
    throw new RangeError(`${info.file}: tensor "${info.name}" ${JSON.stringify(info.shape)} has no rows ${rows.start}..${rows.start + rows.count}`);
  }
  const rowBytes = rest.reduce((s, d) => s * d, 1) * DTYPE_BYTE_SIZE[dtype];
  return {
    file: info.file,
    offset: info.offset + rows.start * rowBytes,
    byteLength: rows.count * rowBytes,
    dtype,
    shape: [rows.count, ...rest],
  };
}

/**
 * Makes `value` depend on `anchor` at no cost: a Reshape (which aliases its input) to a
 * shape that is computed from `anchor`'s run-time shape. onnxruntime runs nodes whose inputs
 * are all initializers first, so without this every weight Cast would run — and its float32
 * result stay alive — before the first layer.
 */
function sequencedAfter(g: GraphBuilder, value: Value, anchor: Value, name: string): Value {
  const dims = value.shape as readonly number[];
  const zero = mul(g, gather(g, shapeOf(g, anchor, `${name}/anchor_shape`), g.int64s([0])), 0, `${name}/anchor_zero`);
  return reshape(g, value, add(g, g.int64s(dims), zero, `${name}/shape_after_anchor`), `${name}/after_anchor`);
}

/**
 * A float32 view of a stored tensor. float32 tensors are used as stored; bf16/f16/f8
 * tensors get an in-graph Cast, so the file stays the only copy of the stored weights
 * (the session runner disables the constant folding that would materialize the cast).
 * With `anchor` (the activation the weight is applied to) the cast runs only when that
 * activation exists, so one float32 weight at a time is alive, not all of them.
 */
export function floatWeight(g: GraphBuilder, name: string, ref: ExternalTensorRef, anchor?: Value): Value {
  const stored = g.external(name, ref);
  if (!isLowPrecisionFloat(stored.dtype)) {
    if (stored.dtype !== 'float32') throw new TypeError(`${ref.file}: tensor for "${name}" is ${stored.dtype}, not a float type`);
    return stored;
  }
  const source = anchor === undefined ? stored : sequencedAfter(g, stored, anchor, name);
  const converted = cast(g, source, 'float32', `${name}/to_float32`);
  return anchor === undefined ? converted : reshape(g, converted, ref.shape, `${name}/static_shape`);
}
