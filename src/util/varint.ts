/**
 * Unsigned base-128 varints (LEB128): protobuf's varint (src/onnx/protobuf.ts) and WebAssembly's
 * unsigned integers (src/util/wasm-encoding.ts) are the same encoding.
 */

/** Encodes an unsigned 64-bit value as a base-128 varint. */
export function encodeVarint(value: bigint): Uint8Array {
  if (value < 0n || value >= 1n << 64n) {
    throw new RangeError(`varint out of range: ${value}`);
  }
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return Uint8Array.from(bytes);
}
