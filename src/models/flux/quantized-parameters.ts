/**
 * go_fast: every linear weight block-quantized to 8 (or 4) bits and run with
 * com.microsoft MatMulNBits (docs/onnxruntime.md §4: 1.5–1.7× the fp32 GEMM rate at ≈1 B/param),
 * derived once per checkpoint into the quantized cache; biases and norm scales stay in the
 * checkpoint.
 */
import type { GraphBuilder, Value } from '../../onnx/graph.js';
import { quantizedCache, storedWeight, type QuantizationSettings } from '../../weights/quantized-cache.js';
import type { StoredWeight } from '../../weights/quantize-stored.js';
import { quantizedLinear } from '../common/quantized-linear.js';
import type { SafetensorsFile } from '../../weights/safetensors.js';
import type { FluxCheckpoint } from './checkpoint.js';
import { linearBias, storedFloat } from './exact-parameters.js';
import type { FluxParameters } from './graph.js';
import { linearSpecs, type LinearSpec } from './layout.js';

/** Where canonical weights [out, in] lie as stored (a row range of a fused tensor where the checkpoint fuses them). */
async function storedLinearWeight(checkpoint: FluxCheckpoint, name: string): Promise<StoredWeight> {
  const { info, rows } = checkpoint.locate(name);
  const whole = storedWeight(checkpoint.source, info.name);
  if (rows === undefined) return whole;
  const rowBytes = info.byteLength / (info.shape[0] as number);
  return { ...whole, bytes: { offset: info.offset + rows.start * rowBytes, byteLength: rows.count * rowBytes } };
}

export function fluxQuantizedCache(checkpoint: FluxCheckpoint, settings: QuantizationSettings, cacheDir?: string) {
  const specs = linearSpecs(checkpoint.config);
  return quantizedCache({
    kind: `flux-transformer ${checkpoint.layout} ${checkpoint.prefix}`,
    sourceFiles: specs.map((s) => checkpoint.locate(`${s.name}.weight`).info.file),
    linears: specs.map((s) => ({ name: s.name, n: s.outFeatures, k: s.inFeatures, read: () => storedLinearWeight(checkpoint, `${s.name}.weight`) })),
    settings,
    cacheDir,
  });
}

export function quantizedParameters(checkpoint: FluxCheckpoint, cache: SafetensorsFile, settings: QuantizationSettings): FluxParameters {
  return {
    linear(g: GraphBuilder, x: Value, spec: LinearSpec, biasDelta?: Value): Value {
      const linear = { name: spec.name, n: spec.outFeatures, k: spec.inFeatures };
      return quantizedLinear(g, x, cache, linear, settings, linearBias(g, checkpoint, spec, biasDelta));
    },
    vector: (g, name) => storedFloat(g, checkpoint, name),
  };
}
