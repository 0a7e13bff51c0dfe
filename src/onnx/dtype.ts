/** Element types a graph value or initializer can have. */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'float8e4m3fn' | 'float8e5m2' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** ONNX TensorProto.DataType enum values. */
export const ONNX_DATA_TYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  bfloat16: 16,
  float8e4m3fn: 17,
  float8e5m2: 19,
};

export const DTYPE_BYTE_SIZE: Record<DType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float8e4m3fn: 1,
  float8e5m2: 1,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function isFloatType(dtype: DType): boolean {
  return dtype.startsWith('float') || dtype === 'bfloat16';
}

/** Types that have no CPU compute kernels and must be cast to float32 in-graph. */
export function isLowPrecisionFloat(dtype: DType): boolean {
  return isFloatType(dtype) && dtype !== 'float32';
}
