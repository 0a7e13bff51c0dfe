import { describe, expect, it } from 'vitest';
import { ProtoMessage } from '../../../src/onnx/protobuf.js';
import { encodeVarint } from '../../../src/util/varint.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('protobuf writer', () => {
  it('encodes varints like the protobuf spec examples', () => {
    expect(hex(encodeVarint(0n))).toBe('00');
    expect(hex(encodeVarint(1n))).toBe('01');
    expect(hex(encodeVarint(150n))).toBe('9601');
    expect(hex(encodeVarint(300n))).toBe('ac02');
    expect(hex(encodeVarint((1n << 64n) - 1n))).toBe('ffffffffffffffffff01');
    expect(() => encodeVarint(-1n)).toThrow(RangeError);
    expect(() => encodeVarint(1n << 64n)).toThrow(RangeError);
  });

  it('writes negative ints as 10-byte two’s complement varints', () => {
    expect(hex(new ProtoMessage().int(1, -1).toBytes())).toBe('08ffffffffffffffffff01');
    expect(hex(new ProtoMessage().int(3, -2n).toBytes())).toBe('18feffffffffffffffff01');
    expect(() => new ProtoMessage().int(1, 2 ** 60)).toThrow(/not a safe integer/);
  });

  it('writes floats, strings and nested messages with correct lengths', () => {
    const child = new ProtoMessage().string(1, 'hi').float(2, 1.5);
    const parent = new ProtoMessage().message(3, child).int(4, 150);
    // child: 0a 02 'h' 'i' | 15 0000c03f ; parent: 1a <len 9> child | 20 9601
    expect(hex(parent.toBytes())).toBe('1a090a0268691500' + '00c03f' + '209601');
    expect(parent.size).toBe(parent.toBytes().byteLength);
  });

  it('references large payloads instead of copying them until toBytes', () => {
    const payload = new Uint8Array(300).fill(7);
    const m = new ProtoMessage().bytes(9, payload);
    payload[0] = 9;
    const bytes = m.toBytes();
    expect(bytes.byteLength).toBe(1 + 2 + 300);
    expect(hex(bytes.subarray(0, 3))).toBe('4aac02');
    expect(bytes[3]).toBe(9);
  });
});
