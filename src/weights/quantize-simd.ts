/**
 * 8-bit block quantization (./quantize.ts's layout and arithmetic) as a WebAssembly SIMD kernel that reads
 * bf16 or float32 bytes directly: one pass per block for min/max, one for the values, 4 values per
 * instruction (docs/onnxruntime.md §10.11: 5× the JavaScript loop per CPU second). It gives exactly
 * what the JavaScript loop does: min/max of float32 values ignoring NaN, scale = fround((hi − lo)/255),
 * zero point = Math.round(−lo/scale) clamped to [0, 255] (both in float64), and each value as the float64
 * w/scale + zp rounded half to even and clamped — computed from the float32 quotient, and in float64
 * where that quotient is exactly half an integer — so the bytes are identical
 * (test/unit/weights/quantize-simd.test.ts) and caches derived before stay valid.
 */
import {
  BLOCK_VOID,
  F32,
  F64,
  f64Const,
  get,
  I32,
  i32Const,
  memarg,
  misc,
  miscOp,
  op,
  set,
  simd,
  simdOp,
  tee,
  V128,
  wasmModule,
  type WasmFunction,
} from '../util/wasm-encoding.js';
import type { QuantizedWeight } from './quantize.js';

/** Stored formats the kernel reads directly. */
export type SimdSource = 'BF16' | 'F32';

// Parameters, then locals, by index.
const [SRC, DST, SCALES, ZPS, ROWS, K, BS, KBLOCKS] = [0, 1, 2, 3, 4, 5, 6, 7];
const [ROW, B, COUNT, P, I, BLOCK, OUT, ROW_START, W] = [8, 9, 10, 11, 12, 13, 14, 15, 16];
const [LO, HI, V] = [17, 18, 19];
const [SCALE, ZP, X] = [20, 21, 22];
const [LO4, HI4, SC2, ZP2, VEC, S4, ZP4, Q, HALF4, PAIR] = [23, 24, 25, 26, 27, 28, 29, 30, 31, 32];

const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const LOW_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
/** bf16 pairs split into even and odd values come out of the narrowing as 0 2 4 6 1 3 5 7 8 10 …: interleave. */
const INTERLEAVE = [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15];
const BF16_ODD_MASK = [0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff];

interface Source {
  /** log2 of the bytes per value. */
  shift: number;
  /** Values per pass-1 step, and the code that leaves them as f32x4 vectors (order free) from the address on the stack. */
  stepValues: number;
  minMaxStep: (vector: number[]) => number[];
  /** Code leaving the i-th f32x4 of the 16 values at the address in local W, and the byte order the narrowing leaves. */
  vector16: (index: number) => number[];
  order16: number[] | null;
  /** One value, as f32, from the address on the stack. */
  load1: number[];
}

const bf16Pair = (index: number) => [
  ...get(W),
  ...simd(simdOp.v128Load, ...memarg((index >> 1) * 16)),
  ...(index % 2 === 0 ? [...i32Const(16), ...simd(simdOp.i32x4Shl)] : [...simd(simdOp.v128Const, ...BF16_ODD_MASK), ...simd(simdOp.v128And)]),
];

const SOURCES: Record<SimdSource, Source> = {
  // bf16 is the top half of a float32: eight values per load, the even ones shifted up, the odd ones masked.
  BF16: {
    shift: 1,
    stepValues: 8,
    minMaxStep: (update) => [
      ...simd(simdOp.v128Load, ...memarg()),
      ...tee(PAIR),
      ...i32Const(16),
      ...simd(simdOp.i32x4Shl),
      ...update,
      ...get(PAIR),
      ...simd(simdOp.v128Const, ...BF16_ODD_MASK),
      ...simd(simdOp.v128And),
      ...update,
    ],
    vector16: bf16Pair,
    order16: INTERLEAVE,
    load1: [op.i32Load16U, ...memarg(), ...i32Const(16), op.i32Shl, op.f32ReinterpretI32],
  },
  F32: {
    shift: 2,
    stepValues: 4,
    minMaxStep: (update) => [...simd(simdOp.v128Load, ...memarg()), ...update],
    vector16: (index) => [...get(W), ...simd(simdOp.v128Load, ...memarg(index * 16))],
    order16: null,
    load1: [op.f32Load, ...memarg()],
  },
};

function kernel(name: string, sourceType: SimdSource): WasmFunction {
  const source = SOURCES[sourceType];
  const { shift } = source;
  /** Address of value `I` of the block. */
  const at = [...get(P), ...get(I), ...i32Const(shift), op.i32Shl, op.i32Add];
  const increment = (local: number, by: number) => [...get(local), ...i32Const(by), op.i32Add, ...set(local)];
  /** `block { loop { if (exit) break; body; continue } }`. */
  const whileNot = (exit: number[], body: number[]) => [op.block, BLOCK_VOID, op.loop, BLOCK_VOID, ...exit, op.brIf, 1, ...body, op.br, 0, op.end, op.end];
  /** x = v OP x ? v : x for f32 locals (JS `v < lo ? v : lo`: NaN never replaces). */
  const keep = (local: number, compare: number) => [...get(V), ...get(local), ...get(V), ...get(local), compare, op.select, ...set(local)];
  const reduceLanes = (vector: number, local: number, compare: number) => [
    ...get(vector),
    ...simd(simdOp.f32x4ExtractLane, 0),
    ...set(local),
    ...[1, 2, 3].flatMap((lane) => [...get(vector), ...simd(simdOp.f32x4ExtractLane, lane), ...set(V), ...keep(local, compare)]),
  ];
  /** pmin(lo, v) = v < lo ? v : lo and pmax(hi, v) = hi < v ? v : hi, lane by lane, for the f32x4 on the stack. */
  const minMax = [
    ...set(VEC),
    ...get(LO4),
    ...get(VEC),
    ...simd(simdOp.f32x4Pmin),
    ...set(LO4),
    ...get(HI4),
    ...get(VEC),
    ...simd(simdOp.f32x4Pmax),
    ...set(HI4),
  ];
  /** Two quantized values (i32x4 lanes 0, 1) from the f64x2 on the stack, exactly as JavaScript's float64 arithmetic. */
  const exact2 = [
    ...get(SC2),
    ...simd(simdOp.f64x2Div),
    ...get(ZP2),
    ...simd(simdOp.f64x2Add),
    ...simd(simdOp.f64x2Nearest),
    ...simd(simdOp.i32x4TruncSatF64x2SZero),
  ];
  const exact4 = [
    ...[...get(VEC), ...simd(simdOp.f64x2PromoteLowF32x4), ...exact2],
    ...[...get(VEC), ...get(VEC), ...simd(simdOp.i8x16Shuffle, ...HIGH_HALF), ...simd(simdOp.f64x2PromoteLowF32x4), ...exact2],
    ...simd(simdOp.i8x16Shuffle, ...LOW_HALVES),
  ];
  /**
   * The f32x4 on the stack quantized to i32x4. The float32 quotient q = fl32(w/scale) rounds to the same
   * integer as the float64 w/scale + zp unless q is exactly half an integer (then the float64 quotient may
   * lie on either side): such a group of four takes the float64 arithmetic.
   */
  const quantize4 = [
    ...[...tee(VEC), ...get(S4), ...simd(simdOp.f32x4Div), ...set(Q)],
    ...[...get(Q), ...get(Q), ...simd(simdOp.f32x4Floor), ...simd(simdOp.f32x4Sub), ...get(HALF4), ...simd(simdOp.f32x4Eq), ...simd(simdOp.v128AnyTrue)],
    ...[
      op.if,
      V128,
      ...exact4,
      op.else,
      ...get(Q),
      ...simd(simdOp.f32x4Nearest),
      ...get(ZP4),
      ...simd(simdOp.f32x4Add),
      ...simd(simdOp.i32x4TruncSatF32x4S),
      op.end,
    ],
  ];
  const splat4 = (scalar: number[]) => [...scalar, ...simd(simdOp.f32x4Splat)];
  const block = [
    // count = min(blockSize, k − b·blockSize); P = first value of the block; BLOCK = row·kBlocks + b.
    ...[...get(K), ...get(B), ...get(BS), op.i32Mul, op.i32Sub, ...set(COUNT)],
    ...[...get(BS), ...get(COUNT), ...get(COUNT), ...get(BS), op.i32GtU, op.select, ...set(COUNT)],
    ...[...get(ROW_START), ...get(B), ...get(BS), op.i32Mul, ...i32Const(shift), op.i32Shl, op.i32Add, ...set(P)],
    ...[...get(ROW), ...get(KBLOCKS), op.i32Mul, ...get(B), op.i32Add, ...set(BLOCK)],
    // Pass 1: min and max (starting at 0, so 0 is representable).
    ...[...splat4([...i32Const(0), op.f32ReinterpretI32]), ...tee(LO4), ...set(HI4), ...i32Const(0), ...set(I)],
    ...whileNot(
      [...get(I), ...i32Const(source.stepValues), op.i32Add, ...get(COUNT), op.i32GtU],
      [...at, ...source.minMaxStep(minMax), ...increment(I, source.stepValues)],
    ),
    ...reduceLanes(LO4, LO, op.f32Lt),
    ...reduceLanes(HI4, HI, op.f32Gt),
    ...whileNot([...get(I), ...get(COUNT), op.i32GeU], [...at, ...source.load1, ...set(V), ...keep(LO, op.f32Lt), ...keep(HI, op.f32Gt), ...increment(I, 1)]),
    // scale = hi > lo ? fround((hi − lo)/255) : 1; zp = min(255, max(0, Math.round(−lo/scale))).
    ...[...get(HI), op.f64PromoteF32, ...get(LO), op.f64PromoteF32, op.f64Sub, ...f64Const(255), op.f64Div, op.f32DemoteF64, op.f64PromoteF32],
    ...[...f64Const(1), ...get(HI), ...get(LO), op.f32Gt, op.select, ...set(SCALE)],
    ...[...get(LO), op.f64PromoteF32, op.f64Neg, ...get(SCALE), op.f64Div, ...tee(X), op.f64Floor, ...set(ZP)],
    ...[...get(ZP), ...f64Const(1), op.f64Add, ...get(ZP), ...get(X), ...get(ZP), op.f64Sub, ...f64Const(0.5), op.f64Ge, op.select, ...set(ZP)],
    ...[...f64Const(255), ...f64Const(0), ...get(ZP), op.f64Max, op.f64Min, ...set(ZP)],
    ...[...get(SCALES), ...get(BLOCK), ...i32Const(2), op.i32Shl, op.i32Add, ...get(SCALE), op.f32DemoteF64, op.f32Store, ...memarg()],
    ...[...get(ZPS), ...get(BLOCK), op.i32Add, ...get(ZP), ...miscOp(misc.i32TruncSatF64U), op.i32Store8, ...memarg()],
    // Pass 2: 16 values at a time, then one at a time; narrowing saturates to [0, 255].
    ...[...get(DST), ...get(BLOCK), ...get(BS), op.i32Mul, op.i32Add, ...set(OUT)],
    ...[...get(SCALE), ...simd(simdOp.f64x2Splat), ...set(SC2), ...get(ZP), ...simd(simdOp.f64x2Splat), ...set(ZP2), ...i32Const(0), ...set(I)],
    ...[...splat4([...get(SCALE), op.f32DemoteF64]), ...set(S4), ...splat4([...get(ZP), op.f32DemoteF64]), ...set(ZP4)],
    ...whileNot(
      [...get(I), ...i32Const(16), op.i32Add, ...get(COUNT), op.i32GtU],
      [
        ...[...get(OUT), ...get(I), op.i32Add, ...at, ...set(W)],
        ...[...source.vector16(0), ...quantize4, ...source.vector16(1), ...quantize4, ...simd(simdOp.i16x8NarrowI32x4S)],
        ...[...source.vector16(2), ...quantize4, ...source.vector16(3), ...quantize4, ...simd(simdOp.i16x8NarrowI32x4S)],
        ...simd(simdOp.i8x16NarrowI16x8U),
        ...(source.order16 === null ? [] : [...tee(VEC), ...get(VEC), ...simd(simdOp.i8x16Shuffle, ...source.order16)]),
        ...simd(simdOp.v128Store, ...memarg()),
        ...increment(I, 16),
      ],
    ),
    ...whileNot(
      [...get(I), ...get(COUNT), op.i32GeU],
      [
        ...[...get(OUT), ...get(I), op.i32Add, ...f64Const(255), ...f64Const(0)],
        ...[...at, ...source.load1, op.f64PromoteF32, ...get(SCALE), op.f64Div, ...get(ZP), op.f64Add, op.f64Nearest],
        ...[op.f64Max, op.f64Min, ...miscOp(misc.i32TruncSatF64U), op.i32Store8, ...memarg()],
        ...increment(I, 1),
      ],
    ),
    // Padding beyond K (last block) encodes zero.
    ...[
      ...get(OUT),
      ...get(COUNT),
      op.i32Add,
      ...get(ZP),
      ...miscOp(misc.i32TruncSatF64U),
      ...get(BS),
      ...get(COUNT),
      op.i32Sub,
      ...miscOp(misc.memoryFill, 0),
    ],
  ];
  const body = [
    ...[...splat4([...f64Const(0.5), op.f32DemoteF64]), ...set(HALF4)],
    ...[...get(SRC), ...set(ROW_START)],
    ...[op.loop, BLOCK_VOID, ...i32Const(0), ...set(B)],
    ...[op.loop, BLOCK_VOID, ...block, ...increment(B, 1), ...get(B), ...get(KBLOCKS), op.i32LtU, op.brIf, 0, op.end],
    ...[...get(ROW_START), ...get(K), ...i32Const(shift), op.i32Shl, op.i32Add, ...set(ROW_START)],
    ...[...increment(ROW, 1), ...get(ROW), ...get(ROWS), op.i32LtU, op.brIf, 0, op.end],
  ];
  return {
    name,
    params: 8,
    locals: [
      [9, I32],
      [3, F32],
      [3, F64],
      [10, V128],
    ],
    body,
  };
}

const WASM_PAGE = 65536;

/** The parts of the WebAssembly JS API used here (the project's TypeScript libraries do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
const { Module, Instance } = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const kernelModule = new Module(wasmModule([kernel('bf16', 'BF16'), kernel('f32', 'F32')], 1));
type Kernel = (src: number, dst: number, scales: number, zps: number, rows: number, k: number, blockSize: number, kBlocks: number) => void;

/** Values quantized per kernel call: small enough that a slab's input stays in the core's cache. */
const SLAB_VALUES = 1 << 18;

let instance: { memory: WasmMemory; kernels: Record<SimdSource, Kernel> } | null = null;

/** This thread's kernel instance, its memory at least `bytesNeeded` long. */
function kernels(bytesNeeded: number): { memory: WasmMemory; kernels: Record<SimdSource, Kernel> } {
  if (instance === null) {
    const { exports } = new Instance(kernelModule);
    instance = { memory: exports.memory as WasmMemory, kernels: { BF16: exports.bf16 as Kernel, F32: exports.f32 as Kernel } };
  }
  const missing = bytesNeeded - instance.memory.buffer.byteLength;
  if (missing > 0) instance.memory.grow(Math.ceil(missing / WASM_PAGE));
  return instance;
}

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/** Bytes of the one buffer an 8-bit result [n, k] lies in: its data, then its scales, then its zero points. */
export function quantized8Bytes(n: number, k: number, blockSize: number): number {
  const blocks = n * Math.ceil(k / blockSize);
  return blocks * (blockSize + 4 + 1);
}

/**
 * Quantizes a weight [n, k] to 8 bits in blocks of `blockSize` along K (MatMulNBits layout, as
 * quantizeBlockwise returns it). `copyRows(target, first)` writes rows [first, first + target.byteLength /
 * row bytes) as little-endian `source` bytes into `target`, the kernel's memory, a slab of rows at a time.
 * The result's three arrays are views of one buffer: `spare` when it holds quantized8Bytes (a buffer
 * recycled from an earlier result, whose pages are already touched: first touches cost 14–39× a refill
 * here, docs/onnxruntime.md §10.11), otherwise a new one.
 */
export function quantize8Simd(
  source: SimdSource,
  n: number,
  k: number,
  blockSize: number,
  copyRows: (target: Uint8Array, first: number) => void,
  spare?: ArrayBuffer,
): QuantizedWeight {
  const valueBytes = source === 'BF16' ? 2 : 4;
  const kBlocks = Math.ceil(k / blockSize);
  const bytes = quantized8Bytes(n, k, blockSize);
  const buffer = spare !== undefined && spare.byteLength >= bytes ? spare : new ArrayBuffer(bytes);
  const dataBytes = n * kBlocks * blockSize;
  const out: QuantizedWeight = {
    data: new Uint8Array(buffer, 0, dataBytes),
    scales: new Float32Array(buffer, dataBytes, n * kBlocks),
    zeroPoints: new Uint8Array(buffer, dataBytes + 4 * n * kBlocks, n * kBlocks),
    bits: 8,
    blockSize,
    n,
    k,
  };
  const slabRows = Math.max(1, Math.min(n, Math.floor(SLAB_VALUES / k)));
  const dst = align16(slabRows * k * valueBytes);
  const scales = dst + align16(slabRows * kBlocks * blockSize);
  const zps = scales + align16(slabRows * kBlocks * 4);
  const { memory, kernels: run } = kernels(zps + align16(slabRows * kBlocks));
  const heap = new Uint8Array(memory.buffer);
  for (let first = 0; first < n && k > 0; first += slabRows) {
    const rows = Math.min(slabRows, n - first);
    const blocks = rows * kBlocks;
    copyRows(heap.subarray(0, rows * k * valueBytes), first);
    run[source](0, dst, scales, zps, rows, k, blockSize, kBlocks);
    const firstBlock = first * kBlocks;
    out.data.set(heap.subarray(dst, dst + blocks * blockSize), firstBlock * blockSize);
    out.scales.set(new Float32Array(memory.buffer, scales, blocks), firstBlock);
    out.zeroPoints.set(heap.subarray(zps, zps + blocks), firstBlock);
  }
  return out;
}
