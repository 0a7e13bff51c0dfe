/**
 * `flux-lora eval transformer`: runs every case of a golden transformer case file
 * (inputs `case<k>.hidden_states`, …) and writes `case<k>.expected` — the golden name
 * of the output — so the result compares name by name with the reference file.
 */
import { FluxTransformer, type FluxPrecision } from '../models/flux-transformer.js';
import { InferenceWorker } from '../onnx/runner.js';
import { float32Tensor } from '../onnx/tensor-data.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../weights/safetensors-writer.js';
import type { Evaluator } from './registry.js';

export function caseIndices(file: SafetensorsFile, inputName: string): number[] {
  const indices = file
    .names()
    .map((n) => new RegExp(`^case(\\d+)\\.${inputName.replace('.', '\\.')}$`).exec(n)?.[1])
    .filter((k): k is string => k !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  if (indices.length === 0) throw new Error(`${file.path}: no cases (expected tensors named case<k>.${inputName})`);
  return indices;
}

export function transformerEvaluator(precision: FluxPrecision): Evaluator {
  return {
    component: precision === 'exact' ? 'transformer' : `transformer-${precision}`,
    summary: `FLUX transformer${precision === 'exact' ? '' : ` (${precision} quantized)`}: case<k>.{hidden_states,…} → case<k>.expected`,
    async evaluate({ model, casePath, outPath }) {
      const cases = await SafetensorsFile.open(casePath);
      const worker = new InferenceWorker();
      try {
        const transformer = await FluxTransformer.load(worker, model, { precision });
        const outputs: TensorToWrite[] = [];
        for (const k of caseIndices(cases, 'hidden_states')) {
          const read = (name: string) => cases.readFloat32(`case${k}.${name}`);
          const tensor = async (name: string) => float32Tensor(cases.info(`case${k}.${name}`).shape, await read(name));
          const hasGuidance = cases.has(`case${k}.guidance`);
          const velocity = await transformer.forward({
            hiddenStates: await tensor('hidden_states'),
            encoderHiddenStates: await tensor('encoder_hidden_states'),
            pooledProjections: await tensor('pooled_projections'),
            timestep: Array.from(await read('timestep')),
            ...(hasGuidance ? { guidance: Array.from(await read('guidance')) } : {}),
            imgIds: await read('img_ids'),
            txtIds: await read('txt_ids'),
          });
          outputs.push({ name: `case${k}.expected`, dtype: 'F32', shape: velocity.dims, data: velocity.data as Float32Array });
        }
        await writeSafetensors(outPath, outputs, { component: 'transformer', precision, model });
      } finally {
        await worker.close();
      }
    },
  };
}
