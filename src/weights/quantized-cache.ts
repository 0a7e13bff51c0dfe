/**
 * Block-quantized copies of a model's linear weights (MatMulNBits layout), derived once
 * and cached on disk as a safetensors file keyed by the source files' identity (real path,
 * size, mtime) and the settings. Weights stay on disk; graphs reference them as external data.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { QuantizedWeight } from './quantize.js';
import { QuantizePool } from './quantize-pool.js';
import type { StoredWeight } from './quantize-stored.js';
import { defaultCacheDir } from '../config.js';
import { SafetensorsFile, type TensorSource } from './safetensors.js';
import { writeSafetensors, type TensorToWrite } from './safetensors-writer.js';

export interface QuantizationSettings {
  bits: 4 | 8;
  blockSize: number;
  /** MatMulNBits accuracy level: 4 = int8 activations (fast), 0 = float32 activations. */
  accuracyLevel: 0 | 4;
}

export const QUANTIZED_8BIT: QuantizationSettings = { bits: 8, blockSize: 128, accuracyLevel: 4 };
export const QUANTIZED_4BIT: QuantizationSettings = { bits: 4, blockSize: 64, accuracyLevel: 4 };

const CACHE_FORMAT = 'flux-lora quantized linears v1';

/**
 * A Linear weight [n, k] (out × in) to quantize; `read` is called once, in list order, and returns
 * the stored bytes or where they lie in their file: reading and converting them run on the pool
 * thread that quantizes them.
 */
export interface QuantizableLinear {
  name: string;
  n: number;
  k: number;
  read(): Promise<StoredWeight>;
}

/** Where a tensor's stored bytes lie, as a linear's `read` returns it: the pool thread reads them. */
export function storedWeight(source: TensorSource, name: string): StoredWeight {
  const { dtype, file, offset, byteLength } = source.info(name);
  return { bytes: { offset, byteLength }, dtype, file, name };
}

export interface QuantizedCacheRequest {
  /** What is cached (part of the key), e.g. "flux-transformer bfl". */
  kind: string;
  /** Files the weights come from: their identity keys the cache. */
  sourceFiles: readonly string[];
  linears: readonly QuantizableLinear[];
  settings: QuantizationSettings;
  cacheDir?: string;
}

function cacheKey(request: QuantizedCacheRequest): string {
  const identity = [...new Set(request.sourceFiles)].sort().map((file) => {
    const stat = statSync(file);
    return { file: realpathSync(file), size: stat.size, mtimeMs: stat.mtimeMs };
  });
  const description = { format: CACHE_FORMAT, kind: request.kind, settings: request.settings, identity };
  return createHash('sha256').update(JSON.stringify(description)).digest('hex').slice(0, 32);
}

/**
 * The linears' quantized forms, in list order: asking for linear i (their `read`s are called on this
 * thread, in order) also starts the next ones, up to two per pool thread, whose reading, conversion
 * and quantization run on the pool. Two per thread keep every thread busy while the file is written in
 * order (with one per thread, a thread that finished early waited for the linear before it: the
 * threads were idle 40–50 % of a FLUX derivation). At most 2 × `pool.size` linears are held at
 * once, each until its three tensors are written.
 */
function quantizedInOrder(
  linears: readonly QuantizableLinear[],
  settings: QuantizationSettings,
  pool: QuantizePool,
): (index: number) => Promise<QuantizedWeight> {
  const jobs: (Promise<QuantizedWeight> | undefined)[] = [];
  let started = 0;
  let reads: Promise<unknown> = Promise.resolve();
  return (index) => {
    for (; started < Math.min(index + 2 * pool.size, linears.length); started++) {
      const linear = linears[started] as QuantizableLinear;
      const weight = reads.then(() => linear.read());
      reads = weight.catch(() => undefined);
      const job = weight.then((w) => pool.quantize(w, linear.n, linear.k, { bits: settings.bits, blockSize: settings.blockSize }));
      job.catch(() => undefined); // a failure is reported when its linear is written
      jobs[started] = job;
    }
    const job = jobs[index] as Promise<QuantizedWeight>;
    jobs[index] = undefined;
    return job;
  };
}

function tensorsToWrite(linears: readonly QuantizableLinear[], settings: QuantizationSettings, pool: QuantizePool): TensorToWrite[] {
  const take = quantizedInOrder(linears, settings, pool);
  const tensors: TensorToWrite[] = [];
  for (const [index, linear] of linears.entries()) {
    const kBlocks = Math.ceil(linear.k / settings.blockSize);
    // The three tensors of one linear are written one after another from one quantized result.
    let quantized: Promise<QuantizedWeight> | null = null;
    const bytes = (pick: (q: QuantizedWeight) => ArrayBufferView, last = false) =>
      async function* () {
        quantized ??= take(index);
        const q = await quantized;
        const view = pick(q);
        if (last) quantized = null;
        yield new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
        // The writer asks for more only once this chunk is on disk: the linear's last tensor is written.
        if (last) pool.recycle(q.data.buffer as ArrayBuffer);
      };
    tensors.push(
      { name: `${linear.name}.qweight`, dtype: 'U8', shape: qweightShape(linear, settings), data: bytes((q) => q.data) },
      { name: `${linear.name}.scales`, dtype: 'F32', shape: [linear.n * kBlocks], data: bytes((q) => q.scales) },
      { name: `${linear.name}.zero_points`, dtype: 'U8', shape: zeroPointsShape(linear, settings), data: bytes((q) => q.zeroPoints, true) },
    );
  }
  return tensors;
}

function qweightShape(linear: QuantizableLinear, settings: QuantizationSettings): number[] {
  return [linear.n, Math.ceil(linear.k / settings.blockSize), (settings.blockSize * settings.bits) / 8];
}

function zeroPointsShape(linear: QuantizableLinear, settings: QuantizationSettings): number[] {
  return [linear.n * Math.ceil((Math.ceil(linear.k / settings.blockSize) * settings.bits) / 8)];
}

/** Whether a cache file holds all three tensors of every linear in the expected dtypes and shapes (a damaged or foreign file does not). */
function complete(file: SafetensorsFile, request: QuantizedCacheRequest): boolean {
  if (file.metadata.format !== CACHE_FORMAT) return false;
  const same = (name: string, dtype: string, shape: number[]) =>
    file.has(name) && file.info(name).dtype === dtype && JSON.stringify(file.info(name).shape) === JSON.stringify(shape);
  return request.linears.every(
    (l) =>
      same(`${l.name}.qweight`, 'U8', qweightShape(l, request.settings)) &&
      same(`${l.name}.scales`, 'F32', [l.n * Math.ceil(l.k / request.settings.blockSize)]) &&
      same(`${l.name}.zero_points`, 'U8', zeroPointsShape(l, request.settings)),
  );
}

/** The quantized weights, from the cache when present, otherwise derived and written atomically. */
export async function quantizedCache(request: QuantizedCacheRequest): Promise<{ file: SafetensorsFile; created: boolean }> {
  const folder = join(request.cacheDir ?? defaultCacheDir(), 'quantized');
  mkdirSync(folder, { recursive: true });
  const path = join(folder, `${cacheKey(request)}.safetensors`);
  try {
    const file = await SafetensorsFile.open(path);
    if (complete(file, request)) return { file, created: false };
  } catch {
    // absent or damaged: derive it again below
  }
  const pool = new QuantizePool();
  try {
    await writeSafetensors(path, tensorsToWrite(request.linears, request.settings, pool), {
      format: CACHE_FORMAT,
      kind: request.kind,
      settings: JSON.stringify(request.settings),
    });
  } finally {
    await pool.close();
  }
  return { file: await SafetensorsFile.open(path), created: true };
}
