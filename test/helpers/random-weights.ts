import { writeSafetensors } from '../../src/weights/safetensors-writer.js';
import { randomFloats } from './random.js';

/** Writes small random float32 weights for the given shapes (norm scales around 1). */
export async function writeRandomWeights(path: string, shapes: Iterable<[string, number[]]>, metadata: Record<string, string> = {}): Promise<string> {
  const tensors = [...shapes].map(([name, shape], i) => {
    const size = shape.reduce((s, d) => s * d, 1);
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((s, d) => s * d, 1) : 1;
    const data = randomFloats(size, 1000 + i, shape.length >= 2 ? 1 / Math.sqrt(fanIn) : 0.1);
    if (/norm.*weight|layer_norm/.test(name) && shape.length === 1) data.forEach((v, j) => (data[j] = 1 + v));
    return { name, dtype: 'F32' as const, shape, data };
  });
  await writeSafetensors(path, tensors, metadata);
  return path;
}
