import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../src/onnx/graph.js';
import * as op from '../../../src/onnx/ops/index.js';
import { float32Tensor } from '../../../src/onnx/tensor-data.js';
import { dequantizeBlockwise, quantizeBlockwise } from '../../../src/weights/quantize.js';
import { randomFloats } from '../../helpers/random.js';
import * as ref from '../../helpers/reference.js';
import { outputData, runOnce, useWorker } from '../../helpers/run-graph.js';

const worker = useWorker();

describe('MatMulNBits with weights quantized by our code', () => {
  for (const bits of [8, 4] as const) {
    it(`${bits}-bit: matches a reference product with the dequantized weights (accuracy level 0), and level 4 stays close`, async () => {
      const [m, k, n, blockSize] = [5, 200, 24, bits === 8 ? 128 : 64];
      const w = randomFloats(n * k, 60 + bits, 0.5);
      const bias = randomFloats(n, 61);
      const q = quantizeBlockwise(w, n, k, { bits, blockSize });
      const kBlocks = Math.ceil(k / blockSize);
      const g = new GraphBuilder(`nbits-${bits}`);
      const x = g.input('x', 'float32', [1, 'm', k]);
      const weight = {
        data: g.initializer('q', 'uint8', [n, kBlocks, (blockSize * bits) / 8], q.data),
        scales: g.initializer('scales', 'float32', [n * kBlocks], q.scales),
        zeroPoints: g.initializer('zp', 'uint8', [q.zeroPoints.length], q.zeroPoints),
        n,
        k,
        bits,
        blockSize,
      };
      const b = g.initializer('bias', 'float32', [n], bias);
      g.output(op.matMulNBits(g, x, weight, { accuracyLevel: 0, bias: b }), 'exact');
      g.output(op.matMulNBits(g, x, weight, { accuracyLevel: 4, bias: b }), 'fast');
      const xs = randomFloats(m * k, 62);
      const out = await runOnce(worker(), g.build(), { x: float32Tensor([1, m, k], xs) });
      const expected = ref.linear(xs, dequantizeBlockwise(q), m, k, n, bias);
      expect(out.exact?.dims).toEqual([1, m, n]);
      expect(ref.maxAbsDiff(outputData(out, 'exact'), expected)).toBeLessThan(1e-4);
      const scale = Math.max(...expected.map(Math.abs));
      expect(ref.maxAbsDiff(outputData(out, 'fast'), expected)).toBeLessThan(0.02 * scale);
      // And the quantization itself is close to the original weights.
      expect(ref.maxAbsDiff(ref.linear(xs, w, m, k, n, bias), expected)).toBeLessThan((bits === 8 ? 0.02 : 0.25) * scale);
    });
  }
});
