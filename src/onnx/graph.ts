/**
 * Typed ONNX graph builder. Values carry a dtype and a (possibly symbolic) shape so
 * mistakes that are knowable at build time throw a GraphError naming the node.
 * Op helpers live in ./ops/; this file holds the graph state and serialization.
 */
import { realpathSync } from 'node:fs';
import { dirname, relative, sep } from 'node:path';
import type { Device } from './device.js';
import { DTYPE_BYTE_SIZE, isLowPrecisionFloat, type DType } from './dtype.js';
import { encodeModel, type Attribute, type Dim, type ExternalTensorDef, type NodeDef, type TensorDef, type ValueInfoDef } from './onnx-proto.js';
import { broadcastShapes, formatShape, staticSize, type Shape } from './shape.js';

export class GraphError extends Error {
  constructor(
    readonly graph: string,
    readonly node: string,
    readonly opType: string,
    detail: string,
  ) {
    super(`graph "${graph}", node "${node}" (${opType}): ${detail}`);
    this.name = 'GraphError';
  }
}

export class Value {
  /** @internal */
  constructor(
    readonly graph: GraphBuilder,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape | null,
  ) {}

  get rank(): number | null {
    return this.shape === null ? null : this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}${formatShape(this.shape)}`;
  }
}

/** Where an external initializer's bytes live (e.g. a tensor inside a .safetensors file). */
export interface ExternalTensorRef {
  file: string;
  offset: number;
  byteLength: number;
  dtype: DType;
  shape: readonly number[];
}

export type TypedArrayData = Float32Array | Uint16Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array;

export interface OutputSpec {
  dtype: DType;
  shape: Shape | null;
}

export interface BuiltModel {
  name: string;
  bytes: Uint8Array;
  /** Folder that external-data locations are relative to; null when every weight is inline. */
  externalDataFolder: string | null;
  /** True when nodes consume float16/bfloat16/float8 initializers (to cast them), which constant folding would materialize. */
  castsLowPrecisionInitializers: boolean;
  inputs: readonly ValueInfoDef[];
  outputs: readonly ValueInfoDef[];
}

const IR_VERSION_FOR_OPSET: Record<number, number> = { 21: 10, 22: 10, 23: 11, 24: 11, 25: 12, 26: 13 };
export const DEFAULT_OPSET = 23;
export const MICROSOFT_DOMAIN = 'com.microsoft';

/** A node being built: its unique name is fixed first so inference errors can name it. */
export class PendingNode {
  constructor(
    private readonly graph: GraphBuilder,
    readonly name: string,
    readonly opType: string,
    readonly domain: string,
  ) {}

  fail(detail: string): never {
    throw new GraphError(this.graph.name, this.name, this.opType, detail);
  }

  /** Broadcasts shapes numpy-style, failing on a certain conflict. */
  broadcast(shapes: readonly (Shape | null)[], context = ''): Shape | null {
    const result = broadcastShapes(shapes);
    if (result !== null && 'conflict' in result) return this.fail(context + result.conflict);
    return result;
  }

  emit(inputs: readonly (Value | null)[], outputs: readonly OutputSpec[], attributes: Readonly<Record<string, Attribute>> = {}): Value[] {
    return this.graph.addNode(this, inputs, outputs, attributes);
  }

  emitOne(inputs: readonly (Value | null)[], output: OutputSpec, attributes: Readonly<Record<string, Attribute>> = {}): Value {
    return this.emit(inputs, [output], attributes)[0] as Value;
  }
}

interface ExternalInitializer {
  name: string;
  ref: ExternalTensorRef;
  realFile: string;
}

function typedBytes(data: TypedArrayData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function commonAncestor(dirs: readonly string[]): string {
  const split = dirs.map((d) => d.split(sep));
  const first = split[0] ?? [];
  let n = first.length;
  for (const parts of split) {
    let i = 0;
    while (i < n && parts[i] === first[i]) i++;
    n = i;
  }
  return first.slice(0, n).join(sep) || sep;
}

export class GraphBuilder {
  readonly opset: number;
  /** The execution provider the graph is built for: ops whose kernel differs per provider pick their form by it (docs/webgpu.md). */
  readonly device: Device;
  private readonly nodes: NodeDef[] = [];
  private readonly inlineInitializers: TensorDef[] = [];
  private readonly externalInitializers: ExternalInitializer[] = [];
  private readonly inputs: ValueInfoDef[] = [];
  private readonly outputs: ValueInfoDef[] = [];
  private readonly usedNames = new Set<string>();
  private readonly scopes: string[] = [];
  private readonly constantCache = new Map<string, Value>();
  private readonly lowPrecisionInitializers = new Set<string>();
  private castsLowPrecision = false;
  private usesMicrosoftDomain = false;

  constructor(
    readonly name: string,
    options: { opset?: number; device?: Device } = {},
  ) {
    this.opset = options.opset ?? DEFAULT_OPSET;
    this.device = options.device ?? 'cpu';
    if (IR_VERSION_FOR_OPSET[this.opset] === undefined) {
      throw new RangeError(`unsupported opset ${this.opset}; use one of ${Object.keys(IR_VERSION_FOR_OPSET).join(', ')}`);
    }
  }

  /** Runs `fn` with `prefix/` prepended to every node and initializer name it creates. */
  scope<T>(prefix: string, fn: () => T): T {
    this.scopes.push(prefix);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private scoped(base: string): string {
    return [...this.scopes, base].join('/');
  }

  private claimName(wanted: string): string {
    let name = wanted;
    for (let i = 2; this.usedNames.has(name); i++) name = `${wanted}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  private claimExactName(kind: string, name: string): string {
    if (name === '' || this.usedNames.has(name)) {
      throw new GraphError(this.name, name, kind, `name "${name}" is empty or already used in this graph`);
    }
    this.usedNames.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    this.claimExactName('input', name);
    this.inputs.push({ name, dtype, shape });
    return new Value(this, name, dtype, shape);
  }

  output(value: Value, name?: string): Value {
    this.checkOwned(value, 'output', name ?? value.name);
    let out = value;
    if (name !== undefined && name !== value.name) {
      this.claimExactName('output', name);
      this.nodes.push({
        name: this.claimName(this.scoped(`${name}/Identity`)),
        opType: 'Identity',
        domain: '',
        inputs: [value.name],
        outputs: [name],
        attributes: {},
      });
      out = new Value(this, name, value.dtype, value.shape);
    }
    this.outputs.push({ name: out.name, dtype: out.dtype, shape: out.shape });
    return out;
  }

  /** A named inline initializer (small weights, tables). */
  initializer(name: string, dtype: DType, dims: readonly number[], data: TypedArrayData): Value {
    const fullName = this.claimExactName('initializer', this.scoped(name));
    const expected = (staticSize(dims) ?? 0) * DTYPE_BYTE_SIZE[dtype];
    if (data.byteLength !== expected) {
      throw new GraphError(this.name, fullName, 'initializer', `${dtype}${formatShape(dims)} needs ${expected} bytes, got ${data.byteLength}`);
    }
    this.inlineInitializers.push({ kind: 'inline', name: fullName, dtype, dims, data: typedBytes(data) });
    if (isLowPrecisionFloat(dtype)) this.lowPrecisionInitializers.add(fullName);
    return new Value(this, fullName, dtype, dims);
  }

  /** An initializer whose bytes stay in a file (never copied into the model). */
  external(name: string, ref: ExternalTensorRef): Value {
    const fullName = this.claimExactName('initializer', this.scoped(name));
    const expected = (staticSize(ref.shape) ?? 0) * DTYPE_BYTE_SIZE[ref.dtype];
    if (ref.byteLength !== expected) {
      throw new GraphError(
        this.name,
        fullName,
        'initializer',
        `${ref.dtype}${formatShape(ref.shape)} needs ${expected} bytes but ${ref.file} holds ${ref.byteLength}`,
      );
    }
    let realFile: string;
    try {
      realFile = realpathSync(ref.file);
    } catch (error) {
      throw new GraphError(this.name, fullName, 'initializer', `cannot resolve ${ref.file}: ${(error as Error).message}`);
    }
    this.externalInitializers.push({ name: fullName, ref, realFile });
    if (isLowPrecisionFloat(ref.dtype)) this.lowPrecisionInitializers.add(fullName);
    return new Value(this, fullName, ref.dtype, ref.shape);
  }

  /** An unnamed inline constant, deduplicated by content. */
  constant(dtype: DType, dims: readonly number[], data: TypedArrayData): Value {
    const bytes = typedBytes(data);
    const key = `${dtype}|${dims.join(',')}|${Buffer.from(bytes).toString('base64')}`;
    const cached = this.constantCache.get(key);
    if (cached !== undefined) return cached;
    const name = this.claimName(`const_${dtype}_${this.constantCache.size}`);
    this.inlineInitializers.push({ kind: 'inline', name, dtype, dims, data: Uint8Array.from(bytes) });
    const value = new Value(this, name, dtype, dims);
    this.constantCache.set(key, value);
    return value;
  }

  /** A rank-0 constant of the given float dtype (float32 by default) or int64. */
  scalar(value: number, dtype: 'float32' | 'int64' = 'float32'): Value {
    if (dtype === 'int64') return this.constant('int64', [], BigInt64Array.of(BigInt(value)));
    return this.constant('float32', [], Float32Array.of(value));
  }

  /** A 1-D int64 constant (shapes, axes, indices). */
  int64s(values: readonly number[]): Value {
    return this.constant(
      'int64',
      [values.length],
      BigInt64Array.from(values, (v) => BigInt(v)),
    );
  }

  /** Reserves a uniquely named node; `name` defaults to the op type. */
  op(opType: string, name?: string, domain = ''): PendingNode {
    return new PendingNode(this, this.claimName(this.scoped(name ?? opType)), opType, domain);
  }

  private checkOwned(value: Value, opType: string, nodeName: string): void {
    if (value.graph !== this) {
      throw new GraphError(this.name, nodeName, opType, `value "${value.name}" belongs to graph "${value.graph.name}"`);
    }
  }

  /** @internal Used by PendingNode.emit. */
  addNode(node: PendingNode, inputs: readonly (Value | null)[], outputs: readonly OutputSpec[], attributes: Readonly<Record<string, Attribute>>): Value[] {
    for (const input of inputs) {
      if (input !== null) this.checkOwned(input, node.opType, node.name);
    }
    if (inputs.some((v) => v !== null && this.lowPrecisionInitializers.has(v.name))) this.castsLowPrecision = true;
    if (node.domain === MICROSOFT_DOMAIN) this.usesMicrosoftDomain = true;
    const values = outputs.map((spec, i) => new Value(this, outputs.length === 1 ? node.name : `${node.name}:${i}`, spec.dtype, spec.shape));
    // Trailing absent optional inputs are omitted: some ORT kernels crash on a trailing "" input.
    let used = inputs.length;
    while (used > 0 && inputs[used - 1] === null) used--;
    this.nodes.push({
      name: node.name,
      opType: node.opType,
      domain: node.domain,
      inputs: inputs.slice(0, used).map((v) => v?.name ?? ''),
      outputs: values.map((v) => v.name),
      attributes,
    });
    return values;
  }

  /** Serializes the model. External locations are made relative to the deepest common folder of their files. */
  build(): BuiltModel {
    if (this.outputs.length === 0) {
      throw new GraphError(this.name, this.name, 'graph', 'the graph has no outputs');
    }
    const realFiles = this.externalInitializers.map((e) => e.realFile);
    const folder = realFiles.length > 0 ? commonAncestor(realFiles.map((f) => dirname(f))) : null;
    const external: ExternalTensorDef[] = this.externalInitializers.map((e) => ({
      kind: 'external',
      name: e.name,
      dtype: e.ref.dtype,
      dims: e.ref.shape,
      location: relative(folder as string, e.realFile)
        .split(sep)
        .join('/'),
      offset: e.ref.offset,
      byteLength: e.ref.byteLength,
    }));
    const opsetImports = [{ domain: '', version: this.opset }];
    if (this.usesMicrosoftDomain) opsetImports.push({ domain: MICROSOFT_DOMAIN, version: 1 });
    const bytes = encodeModel({
      graphName: this.name,
      irVersion: IR_VERSION_FOR_OPSET[this.opset] as number,
      opsetImports,
      nodes: this.nodes,
      initializers: [...this.inlineInitializers, ...external],
      inputs: this.inputs,
      outputs: this.outputs,
    });
    return {
      name: this.name,
      bytes,
      externalDataFolder: folder,
      castsLowPrecisionInitializers: this.castsLowPrecision,
      inputs: [...this.inputs],
      outputs: [...this.outputs],
    };
  }
}

export type { Dim, Shape };
