/**
 * go_fast: every linear weight block-quantized to 8 (or 4) bits and run with
 * com.microsoft MatMulNBits (onnxruntime-notes §4: 1.5–1.7× the fp32 GEMM rate at ≈1 B/param).
 * The quantized weights are derived once per checkpoint and cached on disk as a
 * safetensors file keyed by the checkpoint's identity; biases and norm scales stay in
 * the checkpoint.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { GraphBuilder, Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import { externalRef } from '../../onnx/weights.js';
import { quantizeBlockwise } from '../../weights/quantize.js';
import { SafetensorsFile } from '../../weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../weights/safetensors-writer.js';
import type { FluxCheckpoint } from './checkpoint.js';
import { linearBias, storedFloat } from './exact-parameters.js';
import type { FluxParameters } from './graph.js';
import { linearSpecs, type LinearSpec } from './layout.js';

export interface QuantizationSettings {
  bits: 4 | 8;
  blockSize: number;
  /** MatMulNBits accuracy level: 4 = int8 activations (fast), 0 = float32 activations. */
  accuracyLevel: 0 | 4;
}

export const QUANTIZED_8BIT: QuantizationSettings = { bits: 8, blockSize: 128, accuracyLevel: 4 };
export const QUANTIZED_4BIT: QuantizationSettings = { bits: 4, blockSize: 64, accuracyLevel: 4 };

const CACHE_FORMAT = 'flux-lora quantized transformer v1';

export function defaultCacheDir(): string {
  return process.env.FLUX_LORA_CACHE_DIR ?? join(homedir(), '.cache', 'flux-lora');
}

/** Identity of the checkpoint files (real path, size, mtime) and the quantization settings. */
function cacheKey(checkpoint: FluxCheckpoint, settings: QuantizationSettings): string {
  const files = new Set(linearSpecs(checkpoint.config).map((s) => checkpoint.locate(`${s.name}.weight`).info.file));
  const identity = [...files].sort().map((file) => {
    const stat = statSync(file);
    return { file: realpathSync(file), size: stat.size, mtimeMs: stat.mtimeMs };
  });
  const description = { format: CACHE_FORMAT, layout: checkpoint.layout, prefix: checkpoint.prefix, settings, identity };
  return createHash('sha256').update(JSON.stringify(description)).digest('hex').slice(0, 32);
}

/** Reads canonical weights as float32 [out, in], reading each stored (possibly fused) tensor once. */
function weightReader(checkpoint: FluxCheckpoint) {
  let last: { key: string; data: Float32Array } | null = null;
  return async (name: string): Promise<Float32Array> => {
    const { info, rows } = checkpoint.locate(name);
    const current = last !== null && last.key === info.name ? last : (last = { key: info.name, data: await checkpoint.source.readFloat32(info.name) });
    if (rows === undefined) return current.data;
    const width = current.data.length / (info.shape[0] as number);
    return current.data.subarray(rows.start * width, (rows.start + rows.count) * width);
  };
}

function quantizedTensors(checkpoint: FluxCheckpoint, settings: QuantizationSettings): TensorToWrite[] {
  const read = weightReader(checkpoint);
  const tensors: TensorToWrite[] = [];
  for (const spec of linearSpecs(checkpoint.config)) {
    const kBlocks = Math.ceil(spec.inFeatures / settings.blockSize);
    // The three tensors of one linear are written one after another; the quantized result is
    // kept only until the last of them has been written, so memory holds one linear at a time.
    let pending: ReturnType<typeof quantizeBlockwise> | null = null;
    let unwritten = 0;
    const quantized = async () => {
      if (pending === null) {
        pending = quantizeBlockwise(await read(`${spec.name}.weight`), spec.outFeatures, spec.inFeatures, {
          bits: settings.bits,
          blockSize: settings.blockSize,
        });
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
      { name: `${spec.name}.qweight`, dtype: 'U8', shape: [spec.outFeatures, kBlocks, (settings.blockSize * settings.bits) / 8], data: bytes((q) => q.data) },
      { name: `${spec.name}.scales`, dtype: 'F32', shape: [spec.outFeatures * kBlocks], data: bytes((q) => q.scales) },
      {
        name: `${spec.name}.zero_points`,
        dtype: 'U8',
        shape: [spec.outFeatures * Math.ceil((kBlocks * settings.bits) / 8)],
        data: bytes((q) => q.zeroPoints as Uint8Array),
      },
    );
  }
  return tensors;
}

/**
 * The quantized weights of `checkpoint`, from the cache when present, otherwise derived
 * (one linear at a time, so memory stays at one fused tensor) and written atomically.
 */
export async function quantizedCache(
  checkpoint: FluxCheckpoint,
  settings: QuantizationSettings,
  cacheDir = defaultCacheDir(),
): Promise<{ file: SafetensorsFile; created: boolean }> {
  const folder = join(cacheDir, 'quantized');
  mkdirSync(folder, { recursive: true });
  const path = join(folder, `${cacheKey(checkpoint, settings)}.safetensors`);
  try {
    const file = await SafetensorsFile.open(path);
    if (file.metadata.format === CACHE_FORMAT) return { file, created: false };
  } catch {
    // absent or damaged: derive it again below
  }
  await writeSafetensors(path, quantizedTensors(checkpoint, settings), {
    format: CACHE_FORMAT,
    source: checkpoint.path,
    settings: JSON.stringify(settings),
  });
  return { file: await SafetensorsFile.open(path), created: true };
}

export function quantizedParameters(checkpoint: FluxCheckpoint, cache: SafetensorsFile, settings: QuantizationSettings): FluxParameters {
  return {
    linear(g: GraphBuilder, x: Value, spec: LinearSpec, biasDelta?: Value): Value {
      const part = (suffix: string) => g.external(`${spec.name}.${suffix}`, externalRef(cache.info(`${spec.name}.${suffix}`)));
      return op.matMulNBits(
        g,
        x,
        {
          data: part('qweight'),
          scales: part('scales'),
          zeroPoints: part('zero_points'),
          n: spec.outFeatures,
          k: spec.inFeatures,
          bits: settings.bits,
          blockSize: settings.blockSize,
        },
        { accuracyLevel: settings.accuracyLevel, bias: linearBias(g, checkpoint, spec, biasDelta) },
      );
    },
    vector: (g, name) => storedFloat(g, checkpoint, name),
  };
}
