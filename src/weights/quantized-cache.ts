/**
 * Block-quantized copies of a model's linear weights (MatMulNBits layout), derived once
 * and cached on disk as a safetensors file keyed by the source files' identity (real path,
 * size, mtime) and the settings. Weights stay on disk; graphs reference them as external data.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { quantizeBlockwise } from './quantize.js';
import { defaultCacheDir } from '../config.js';
import { SafetensorsFile } from './safetensors.js';
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

/** A Linear weight [n, k] (out × in) to quantize; `read` is called once, in list order. */
export interface QuantizableLinear {
  name: string;
  n: number;
  k: number;
  read(): Promise<Float32Array>;
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

function tensorsToWrite(linears: readonly QuantizableLinear[], settings: QuantizationSettings): TensorToWrite[] {
  const tensors: TensorToWrite[] = [];
  for (const linear of linears) {
    const kBlocks = Math.ceil(linear.k / settings.blockSize);
    // The three tensors of one linear are written one after another; the quantized result is
    // kept only until the last of them has been written, so memory holds one linear at a time.
    let pending: ReturnType<typeof quantizeBlockwise> | null = null;
    let unwritten = 0;
    const quantized = async () => {
      if (pending === null) {
        pending = quantizeBlockwise(await linear.read(), linear.n, linear.k, { bits: settings.bits, blockSize: settings.blockSize });
        unwritten = 3;
      }
      return pending;
    };
    const bytes = (pick: (q: ReturnType<typeof quantizeBlockwise>) => ArrayBufferView) =>
      async function* () {
        const view = pick(await quantized());
        yield new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
        if (--unwritten === 0) pending = null;
      };
    tensors.push(
      { name: `${linear.name}.qweight`, dtype: 'U8', shape: [linear.n, kBlocks, (settings.blockSize * settings.bits) / 8], data: bytes((q) => q.data) },
      { name: `${linear.name}.scales`, dtype: 'F32', shape: [linear.n * kBlocks], data: bytes((q) => q.scales) },
      { name: `${linear.name}.zero_points`, dtype: 'U8', shape: [linear.n * Math.ceil((kBlocks * settings.bits) / 8)], data: bytes((q) => q.zeroPoints) },
    );
  }
  return tensors;
}

/** The quantized weights, from the cache when present, otherwise derived and written atomically. */
export async function quantizedCache(request: QuantizedCacheRequest): Promise<{ file: SafetensorsFile; created: boolean }> {
  const folder = join(request.cacheDir ?? defaultCacheDir(), 'quantized');
  mkdirSync(folder, { recursive: true });
  const path = join(folder, `${cacheKey(request)}.safetensors`);
  try {
    const file = await SafetensorsFile.open(path);
    if (file.metadata.format === CACHE_FORMAT) return { file, created: false };
  } catch {
    // absent or damaged: derive it again below
  }
  await writeSafetensors(path, tensorsToWrite(request.linears, request.settings), {
    format: CACHE_FORMAT,
    kind: request.kind,
    settings: JSON.stringify(request.settings),
  });
  return { file: await SafetensorsFile.open(path), created: true };
}
