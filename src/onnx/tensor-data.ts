/** Plain tensors exchanged with sessions (structured-cloneable, so they cross worker boundaries). */

export type TensorType = 'float32' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

export type TensorArray = Float32Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

export interface TensorData {
  type: TensorType;
  dims: number[];
  data: TensorArray;
}

export type TensorMap = Record<string, TensorData>;

const ARRAY_TYPE: Record<TensorType, { name: string; bytes: number }> = {
  float32: { name: 'Float32Array', bytes: 4 },
  float16: { name: 'Uint16Array', bytes: 2 },
  int64: { name: 'BigInt64Array', bytes: 8 },
  int32: { name: 'Int32Array', bytes: 4 },
  int8: { name: 'Int8Array', bytes: 1 },
  uint8: { name: 'Uint8Array', bytes: 1 },
  bool: { name: 'Uint8Array', bytes: 1 },
};

/** Checks that data length and typed-array kind match type and dims; returns a description of the problem. */
export function tensorProblem(tensor: TensorData): string | null {
  const expected = ARRAY_TYPE[tensor.type];
  if (expected === undefined) return `unsupported tensor type "${String(tensor.type)}"`;
  if (!Array.isArray(tensor.dims) || tensor.dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    return `invalid dims ${JSON.stringify(tensor.dims)}`;
  }
  if (tensor.data?.constructor?.name !== expected.name) {
    return `${tensor.type} data must be a ${expected.name}, got ${tensor.data?.constructor?.name ?? typeof tensor.data}`;
  }
  const size = tensor.dims.reduce((s, d) => s * d, 1);
  if (tensor.data.length !== size) return `dims [${tensor.dims.join(',')}] need ${size} elements, data has ${tensor.data.length}`;
  return null;
}

export function float32Tensor(dims: number[], data: Float32Array | number[]): TensorData {
  return { type: 'float32', dims, data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

export function int64Tensor(dims: number[], data: BigInt64Array | number[]): TensorData {
  return { type: 'int64', dims, data: data instanceof BigInt64Array ? data : BigInt64Array.from(data, (v) => BigInt(v)) };
}
