/**
 * `flux-lora eval t5 | clip`: encodes every `case<k>.input_ids` of a golden text-encoder
 * case file and writes `case<k>.expected_last_hidden_state` (and, for CLIP,
 * `case<k>.expected_pooler_output`) — the golden names.
 */
import { ClipTextEncoder } from '../models/text/clip-text.js';
import { T5Encoder } from '../models/text/t5-encoder.js';
import { InferenceWorker } from '../onnx/runner.js';
import { int64Tensor, type TensorData } from '../onnx/tensor-data.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import { writeSafetensors } from '../weights/safetensors-writer.js';
import type { EvalRequest, Evaluator } from './types.js';
import { casePrefixes } from './transformer-eval.js';

type Encode = (ids: TensorData) => Promise<Record<string, TensorData>>;

async function evaluateText(request: EvalRequest, component: string, load: (worker: InferenceWorker) => Promise<{ encode: Encode }>): Promise<void> {
  const cases = await SafetensorsFile.open(request.casePath);
  const worker = new InferenceWorker();
  try {
    const model = await load(worker);
    const outputs: { name: string; dtype: 'F32'; shape: number[]; data: Float32Array }[] = [];
    for (const prefix of casePrefixes(cases, 'input_ids')) {
      const name = `${prefix}.input_ids`;
      const produced = await model.encode(int64Tensor(cases.info(name).shape, await cases.readInt64(name)));
      for (const [key, t] of Object.entries(produced)) outputs.push({ name: `${prefix}.${key}`, dtype: 'F32', shape: t.dims, data: t.data as Float32Array });
    }
    await writeSafetensors(request.outPath, outputs, { component, model: request.model });
  } finally {
    await worker.close();
  }
}

export const t5Evaluator: Evaluator = {
  component: 't5',
  summary: 'T5 encoder: case<k>.input_ids → case<k>.expected_last_hidden_state',
  acceptsLoras: false,
  evaluate: (request) =>
    evaluateText(request, 't5', async (worker) => {
      const t5 = await T5Encoder.load(worker, request.model, { session: { device: request.devices.t5 } });
      return { encode: async (ids) => ({ expected_last_hidden_state: await t5.encode(ids) }) };
    }),
};

export const clipEvaluator: Evaluator = {
  component: 'clip',
  summary: 'CLIP text encoder: case<k>.input_ids → case<k>.expected_{last_hidden_state,pooler_output}',
  acceptsLoras: false,
  evaluate: (request) =>
    evaluateText(request, 'clip', async (worker) => {
      const clip = await ClipTextEncoder.load(worker, request.model, { device: request.devices.clip });
      return {
        encode: async (ids) => {
          const { lastHiddenState, pooled } = await clip.encode(ids);
          return { expected_last_hidden_state: lastHiddenState, expected_pooler_output: pooled };
        },
      };
    }),
};
