/**
 * A minimal protobuf wire-format writer: just what ONNX model serialization needs
 * (varints, length-delimited fields, fixed32 floats).
 *
 * A message is kept as a list of byte chunks so large payloads (raw tensor data) are
 * referenced, not copied, until the final `toBytes()`.
 */
import { encodeVarint } from '../util/varint.js';

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

const textEncoder = new TextEncoder();

function encodeSmallVarint(value: number): Uint8Array {
  // Fast path for the common case of small non-negative lengths and tags.
  if (value < 0x80) return Uint8Array.of(value);
  return encodeVarint(BigInt(value));
}

export class ProtoMessage {
  private readonly parts: Uint8Array[] = [];
  private byteSize = 0;

  get size(): number {
    return this.byteSize;
  }

  private push(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.byteSize += bytes.byteLength;
  }

  private tag(field: number, wireType: number): void {
    this.push(encodeSmallVarint((field << 3) | wireType));
  }

  /** int32/int64/enum/bool field. Negative values are written as 10-byte two's complement. */
  int(field: number, value: number | bigint): this {
    const big = typeof value === 'bigint' ? value : BigInt(value);
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw new RangeError(`protobuf int field ${field}: ${value} is not a safe integer`);
    }
    this.tag(field, WIRE_VARINT);
    this.push(encodeVarint(BigInt.asUintN(64, big)));
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.push(bytes);
    return this;
  }

  bytes(field: number, payload: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.push(encodeSmallVarint(payload.byteLength));
    if (payload.byteLength > 0) this.push(payload);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  message(field: number, child: ProtoMessage): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.push(encodeSmallVarint(child.byteSize));
    for (const part of child.parts) this.push(part);
    return this;
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.byteSize);
    let offset = 0;
    for (const part of this.parts) {
      out.set(part, offset);
      offset += part.byteLength;
    }
    return out;
  }
}
