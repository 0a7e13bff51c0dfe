/**
 * ONNX ModelProto serialization (field numbers from onnx/onnx.proto) over the
 * protobuf writer. Only the subset of the schema flux-lora emits.
 */
import { ProtoMessage } from './protobuf.js';
import { ONNX_DATA_TYPE, type DType } from './dtype.js';

export type Dim = number | string | null;

export type Attribute =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'strings'; value: readonly string[] };

/** Constructors for typed node attributes. */
export const attr = {
  int: (value: number): Attribute => ({ type: 'int', value }),
  float: (value: number): Attribute => ({ type: 'float', value }),
  string: (value: string): Attribute => ({ type: 'string', value }),
  ints: (value: readonly number[]): Attribute => ({ type: 'ints', value }),
  floats: (value: readonly number[]): Attribute => ({ type: 'floats', value }),
  strings: (value: readonly string[]): Attribute => ({ type: 'strings', value }),
};

export interface NodeDef {
  name: string;
  opType: string;
  domain: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes: Readonly<Record<string, Attribute>>;
}

export interface ValueInfoDef {
  name: string;
  dtype: DType;
  shape: readonly Dim[] | null;
}

export interface InlineTensorDef {
  kind: 'inline';
  name: string;
  dtype: DType;
  dims: readonly number[];
  data: Uint8Array;
}

/** A tensor whose bytes stay in a file; `location` is relative to the external-data folder. */
export interface ExternalTensorDef {
  kind: 'external';
  name: string;
  dtype: DType;
  dims: readonly number[];
  location: string;
  offset: number;
  byteLength: number;
}

export type TensorDef = InlineTensorDef | ExternalTensorDef;

export interface ModelDef {
  graphName: string;
  irVersion: number;
  opsetImports: readonly { domain: string; version: number }[];
  nodes: readonly NodeDef[];
  initializers: readonly TensorDef[];
  inputs: readonly ValueInfoDef[];
  outputs: readonly ValueInfoDef[];
}

// Field numbers from onnx.proto.
const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7, strings: 8 } as const;
const DATA_LOCATION_EXTERNAL = 1;

function encodeAttribute(name: string, attribute: Attribute): ProtoMessage {
  const m = new ProtoMessage().string(1, name);
  switch (attribute.type) {
    case 'float':
      m.float(2, attribute.value);
      break;
    case 'int':
      m.int(3, attribute.value);
      break;
    case 'string':
      m.string(4, attribute.value);
      break;
    case 'floats':
      for (const v of attribute.value) m.float(7, v);
      break;
    case 'ints':
      for (const v of attribute.value) m.int(8, v);
      break;
    case 'strings':
      for (const v of attribute.value) m.string(9, v);
      break;
  }
  return m.int(20, ATTRIBUTE_TYPE[attribute.type]);
}

function encodeNode(node: NodeDef): ProtoMessage {
  const m = new ProtoMessage();
  for (const input of node.inputs) m.string(1, input);
  for (const output of node.outputs) m.string(2, output);
  m.string(3, node.name).string(4, node.opType);
  for (const [name, attribute] of Object.entries(node.attributes)) {
    m.message(5, encodeAttribute(name, attribute));
  }
  if (node.domain !== '') m.string(7, node.domain);
  return m;
}

function encodeTensor(tensor: TensorDef): ProtoMessage {
  const m = new ProtoMessage();
  for (const d of tensor.dims) m.int(1, d);
  m.int(2, ONNX_DATA_TYPE[tensor.dtype]).string(8, tensor.name);
  if (tensor.kind === 'inline') {
    m.bytes(9, tensor.data);
    return m;
  }
  const entries: [string, string][] = [
    ['location', tensor.location],
    ['offset', String(tensor.offset)],
    ['length', String(tensor.byteLength)],
  ];
  for (const [key, value] of entries) {
    m.message(13, new ProtoMessage().string(1, key).string(2, value));
  }
  return m.int(14, DATA_LOCATION_EXTERNAL);
}

function encodeValueInfo(info: ValueInfoDef): ProtoMessage {
  const tensorType = new ProtoMessage().int(1, ONNX_DATA_TYPE[info.dtype]);
  if (info.shape !== null) {
    const shape = new ProtoMessage();
    for (const dim of info.shape) {
      const d = new ProtoMessage();
      if (typeof dim === 'number') d.int(1, dim);
      else if (typeof dim === 'string') d.string(2, dim);
      shape.message(1, d);
    }
    tensorType.message(2, shape);
  }
  const type = new ProtoMessage().message(1, tensorType);
  return new ProtoMessage().string(1, info.name).message(2, type);
}

export function encodeModel(model: ModelDef): Uint8Array {
  const graph = new ProtoMessage();
  for (const node of model.nodes) graph.message(1, encodeNode(node));
  graph.string(2, model.graphName);
  for (const tensor of model.initializers) graph.message(5, encodeTensor(tensor));
  for (const input of model.inputs) graph.message(11, encodeValueInfo(input));
  for (const output of model.outputs) graph.message(12, encodeValueInfo(output));

  const m = new ProtoMessage().int(1, model.irVersion).string(2, 'flux-lora');
  m.message(7, graph);
  for (const opset of model.opsetImports) {
    const entry = new ProtoMessage();
    if (opset.domain !== '') entry.string(1, opset.domain);
    m.message(8, entry.int(2, opset.version));
  }
  return m.toBytes();
}
