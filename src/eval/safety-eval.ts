/**
 * `flux-lora eval safety-clip | safety-vit` on the golden safety case files
 * (test/golden/data/safety/README.md §1): `pixel_values` [N, 3, S, S] through stage 1 (the CLIP vision
 * tower, projection and the concept decisions) or stage 2 (the ViT classifier), written under
 * the golden names. The case files hold float64 decision scores, which the weights reader
 * (src/weights) refuses by design, so they are read here; outputs are written as float32,
 * uint8 (flags) and int64 (labels) because the writer has no float64.
 */
import { readFile } from 'node:fs/promises';
import { ClipVisionModel } from '../models/safety/clip-vision.js';
import { ViTClassifier } from '../models/safety/vit-classifier.js';
import { InferenceWorker } from '../onnx/runner.js';
import { float32Tensor, type TensorData } from '../onnx/tensor-data.js';
import { conceptDecisions, type ConceptDecision, type ConceptSet } from '../models/safety/concepts.js';
import { writeSafetensors, type TensorToWrite } from '../weights/safetensors-writer.js';
import type { EvalRequest, Evaluator } from './types.js';

export class CaseFileError extends Error {
  constructor(file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'CaseFileError';
  }
}

export interface CaseTensor {
  dtype: string;
  shape: number[];
  /** The values as float64 (exact for every dtype the golden files use). */
  values: Float64Array;
}

const READERS: Record<string, { bytes: number; read(view: DataView, offset: number): number }> = {
  F64: { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
  F32: { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  I64: { bytes: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
  U8: { bytes: 1, read: (v, o) => v.getUint8(o) },
};

/** Every tensor of a golden case file (safetensors with F64, F32, I64 or U8 tensors). */
export async function readCaseFile(file: string): Promise<Map<string, CaseTensor>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new CaseFileError(file, `cannot read: ${(error as Error).message}`);
  }
  const headerLength = bytes.length >= 8 ? Number(bytes.readBigUInt64LE(0)) : Infinity;
  if (8 + headerLength > bytes.length) throw new CaseFileError(file, 'not a safetensors file (truncated header)');
  let header: Record<string, { dtype?: unknown; shape?: unknown; data_offsets?: unknown }>;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  } catch {
    throw new CaseFileError(file, 'not a safetensors file (the header is not JSON)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + 8 + headerLength, bytes.length - 8 - headerLength);
  const tensors = new Map<string, CaseTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const reader = READERS[String(entry.dtype)];
    const shape = entry.shape as number[];
    const [begin, end] = entry.data_offsets as [number, number];
    const count = Array.isArray(shape) ? shape.reduce((s, d) => s * d, 1) : NaN;
    if (reader === undefined || end - begin !== count * reader.bytes || end > view.byteLength) {
      throw new CaseFileError(file, `tensor "${name}": unsupported dtype or bad offsets (${JSON.stringify(entry)})`);
    }
    const values = Float64Array.from({ length: count }, (_, i) => reader.read(view, begin + i * reader.bytes));
    tensors.set(name, { dtype: String(entry.dtype), shape, values });
  }
  return tensors;
}

function pixelValues(file: string, cases: Map<string, CaseTensor>): TensorData {
  const t = cases.get('pixel_values');
  if (t === undefined || t.shape.length !== 4 || t.shape[1] !== 3) throw new CaseFileError(file, 'needs "pixel_values" [N, 3, S, S]');
  return float32Tensor(t.shape, Float32Array.from(t.values));
}

type Output = { shape: number[]; values: ArrayLike<number>; dtype: 'F32' | 'U8' | 'I64' };
type Outputs = Record<string, Output>;

async function evaluate(request: EvalRequest, component: string, run: (worker: InferenceWorker, pixels: TensorData) => Promise<Outputs>): Promise<void> {
  const pixels = pixelValues(request.casePath, await readCaseFile(request.casePath));
  const worker = new InferenceWorker();
  try {
    const outputs = await run(worker, pixels);
    const tensors: TensorToWrite[] = Object.entries(outputs).map(([name, t]) => ({
      name,
      dtype: t.dtype,
      shape: t.shape,
      data: t.dtype === 'F32' ? Float32Array.from(t.values) : t.dtype === 'U8' ? Uint8Array.from(t.values) : BigInt64Array.from(t.values, (v) => BigInt(v)),
    }));
    await writeSafetensors(request.outPath, tensors, { component, model: request.model });
  } finally {
    await worker.close();
  }
}

const f32 = (t: TensorData): Output => ({ shape: t.dims, values: t.data as Float32Array, dtype: 'F32' });

export const safetyClipEvaluator: Evaluator = {
  component: 'safety-clip',
  summary: 'safety checker stage 1: pixel_values → embeddings … image_embeds, cosines, scores, special_care, adjustment, has_nsfw',
  acceptsLoras: false,
  evaluate: (request) =>
    evaluate(request, 'safety-clip', async (worker, pixels) => {
      const model = await ClipVisionModel.load(worker, request.model, { device: request.devices.safety });
      const out = await model.run(pixels, { intermediates: true });
      const decisions = conceptDecisions(out.image_embeds as TensorData, model.concepts);
      const n = decisions.length;
      const perImage = (pick: (d: ConceptDecision) => number, dtype: 'F32' | 'U8'): Output => ({ shape: [n], values: decisions.map(pick), dtype });
      const perConcept = (set: ConceptSet, pick: (d: ConceptDecision) => ArrayLike<number>): Output => ({
        shape: [n, set.thresholds.length],
        values: decisions.flatMap((d) => Array.from(pick(d))),
        dtype: 'F32',
      });
      const { special, concept } = model.concepts;
      return {
        ...Object.fromEntries(Object.entries(out).map(([name, t]) => [name, f32(t)])),
        special_cos: perConcept(special, (d) => d.specialCos),
        concept_cos: perConcept(concept, (d) => d.conceptCos),
        special_scores_raw: perConcept(special, (d) => d.specialRaw),
        concept_scores_raw: perConcept(concept, (d) => d.conceptRaw),
        special_scores: perConcept(special, (d) => d.specialScores),
        concept_scores: perConcept(concept, (d) => d.conceptScores),
        special_care: perImage((d) => Number(d.specialCare), 'U8'),
        adjustment: perImage((d) => d.adjustment, 'F32'),
        has_nsfw: perImage((d) => Number(d.hasNsfw), 'U8'),
      };
    }),
};

export const safetyVitEvaluator: Evaluator = {
  component: 'safety-vit',
  summary: 'safety checker stage 2 (ViT classifier): pixel_values → embeddings, last_hidden_state, logits, predicted',
  acceptsLoras: false,
  evaluate: (request) =>
    evaluate(request, 'safety-vit', async (worker, pixels) => {
      const model = await ViTClassifier.load(worker, request.model, { device: request.devices.safety });
      const out = await model.run(pixels, { intermediates: true });
      const logits = out.logits as TensorData;
      return {
        ...Object.fromEntries(Object.entries(out).map(([name, t]) => [name, f32(t)])),
        predicted: { shape: [logits.dims[0] as number], values: model.argmax(logits), dtype: 'I64' },
      };
    }),
};
