/** Graph nodes of a linear whose weight is in the on-disk quantized cache (MatMulNBits; the bytes stay in the cache file). */
import type { GraphBuilder, Value } from '../../onnx/graph.js';
import { matMulNBits } from '../../onnx/ops/contrib.js';
import type { QuantizationSettings } from '../../weights/quantized-cache.js';
import type { SafetensorsFile } from '../../weights/safetensors.js';
import { externalRef } from './stored-weights.js';

/** x·Wᵀ (+ bias) for a cached quantized linear W [n, k]. */
export function quantizedLinear(
  g: GraphBuilder,
  x: Value,
  cache: SafetensorsFile,
  linear: { name: string; n: number; k: number },
  settings: QuantizationSettings,
  bias?: Value,
): Value {
  const part = (suffix: string) => g.external(`${linear.name}.${suffix}`, externalRef(cache.info(`${linear.name}.${suffix}`)));
  return matMulNBits(
    g,
    x,
    {
      data: part('qweight'),
      scales: part('scales'),
      zeroPoints: part('zero_points'),
      n: linear.n,
      k: linear.k,
      bits: settings.bits,
      blockSize: settings.blockSize,
    },
    { accuracyLevel: settings.accuracyLevel, ...(bias === undefined ? {} : { bias }) },
  );
}
