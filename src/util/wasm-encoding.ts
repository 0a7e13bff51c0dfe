/**
 * The little of the WebAssembly binary format that a hand-written kernel needs: LEB128 numbers,
 * instruction bytes by name, and a module of functions over one exported memory (i32 parameters,
 * no results). Kernels spell their bodies with `op`, `simd` and the helpers here.
 */
import { encodeVarint } from './varint.js';

/** An unsigned integer as WebAssembly writes it (LEB128: protobuf's varint). */
export const unsignedLeb = (value: number): number[] => Array.from(encodeVarint(BigInt(value)));

export function signedLeb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** Value types. */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

/** Core instructions (one byte each) used by the kernels. */
export const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  f32Load: 0x2a,
  i32Load16U: 0x2f,
  f32Store: 0x38,
  i32Store8: 0x3a,
  i32Const: 0x41,
  f64Const: 0x44,
  i32LtU: 0x49,
  i32GtU: 0x4b,
  i32GeU: 0x4f,
  f32Lt: 0x5d,
  f32Gt: 0x5e,
  f64Ge: 0x66,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32Shl: 0x74,
  f64Neg: 0x9a,
  f64Floor: 0x9c,
  f64Nearest: 0x9e,
  f64Add: 0xa0,
  f64Sub: 0xa1,
  f64Div: 0xa3,
  f64Min: 0xa4,
  f64Max: 0xa5,
  f32DemoteF64: 0xb6,
  f64PromoteF32: 0xbb,
  f32ReinterpretI32: 0xbe,
} as const;

/** 0xfc-prefixed instructions. */
export const misc = { i32TruncSatF64U: 3, memoryFill: 11 } as const;

/** SIMD (0xfd-prefixed) instructions used by the kernels. */
export const simdOp = {
  v128Load: 0,
  v128Store: 11,
  v128Const: 12,
  i8x16Shuffle: 13,
  f32x4Splat: 19,
  f64x2Splat: 20,
  f32x4ExtractLane: 31,
  f32x4Eq: 65,
  v128And: 78,
  v128AnyTrue: 83,
  f64x2PromoteLowF32x4: 95,
  i8x16NarrowI16x8U: 102,
  i16x8NarrowI32x4S: 133,
  f32x4Floor: 104,
  f32x4Nearest: 106,
  f64x2Nearest: 148,
  i32x4Shl: 171,
  f32x4Add: 228,
  f32x4Sub: 229,
  f32x4Div: 231,
  f32x4Pmin: 234,
  f32x4Pmax: 235,
  f64x2Add: 240,
  f64x2Div: 243,
  i32x4TruncSatF32x4S: 248,
  i32x4TruncSatF64x2SZero: 252,
} as const;

export const BLOCK_VOID = 0x40;

export const i32Const = (value: number): number[] => [op.i32Const, ...signedLeb(value)];
export const f64Const = (value: number): number[] => [op.f64Const, ...new Uint8Array(Float64Array.of(value).buffer)];
export const get = (local: number): number[] => [op.localGet, ...unsignedLeb(local)];
export const set = (local: number): number[] => [op.localSet, ...unsignedLeb(local)];
export const tee = (local: number): number[] => [op.localTee, ...unsignedLeb(local)];
/** A load or store's memory argument: alignment hint 1 byte, constant offset. */
export const memarg = (offset = 0): number[] => [0, ...unsignedLeb(offset)];
export const simd = (code: number, ...immediates: number[]): number[] => [0xfd, ...unsignedLeb(code), ...immediates];
export const miscOp = (code: number, ...immediates: number[]): number[] => [0xfc, ...unsignedLeb(code), ...immediates];

export interface WasmFunction {
  name: string;
  params: number;
  /** Extra locals after the parameters, as [count, type] runs. */
  locals: [number, number][];
  body: number[];
}

function section(id: number, content: number[]): number[] {
  return [id, ...unsignedLeb(content.length), ...content];
}

function vector(items: number[][]): number[] {
  return [...unsignedLeb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...unsignedLeb(bytes.length), ...bytes];
}

/** A module exporting `functions` (each `(i32 × params) → ()`) and its memory as "memory". */
export function wasmModule(functions: readonly WasmFunction[], memoryPages: number): Uint8Array {
  const types = functions.map((f) => [0x60, ...vector(Array.from({ length: f.params }, () => [I32])), 0]);
  const code = functions.map((f) => {
    const body = [...vector(f.locals.map(([count, type]) => [...unsignedLeb(count), type])), ...f.body, op.end];
    return [...unsignedLeb(body.length), ...body];
  });
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(types)),
    ...section(3, vector(functions.map((_, i) => unsignedLeb(i)))),
    ...section(5, vector([[0x00, ...unsignedLeb(memoryPages)]])),
    ...section(7, vector([...functions.map((f, i) => [...name(f.name), 0x00, ...unsignedLeb(i)]), [...name('memory'), 0x02, 0]])),
    ...section(10, vector(code)),
  ]);
}
