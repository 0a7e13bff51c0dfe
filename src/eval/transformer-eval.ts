/**
 * `flux-lora eval transformer`: runs every case of a golden transformer case file
 * (inputs `<case>.hidden_states`, … with <case> = case0, case1, … or `input` in the LoRA
 * cases) and writes `<case>.expected` — the golden name of the output — so the result
 * compares name by name with the reference file.
 */
import { FluxTransformer, type FluxPrecision } from '../models/flux/transformer.js';
import { InferenceWorker } from '../onnx/runner.js';
import { float32Tensor } from '../onnx/tensor-data.js';
import { combineLoras } from '../lora/apply.js';
import { FluxLoraTargets } from '../lora/flux-targets.js';
import { parseLora } from '../lora/formats.js';
import { openTensorSource, SafetensorsFile } from '../weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../weights/safetensors-writer.js';
import type { Evaluator } from './types.js';

/** Case prefixes of a golden file: every `<prefix>.<inputName>` (`case0`, `case1`, … or `input`). */
export function casePrefixes(file: SafetensorsFile, inputName: string): string[] {
  const suffix = `.${inputName}`;
  const prefixes = file
    .names()
    .filter((n) => n.endsWith(suffix))
    .map((n) => n.slice(0, -suffix.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (prefixes.length === 0) throw new Error(`${file.path}: no cases (expected tensors named case<k>.${inputName})`);
  return prefixes;
}

export function transformerEvaluator(precision: FluxPrecision): Evaluator {
  return {
    component: precision === 'exact' ? 'transformer' : `transformer-${precision}`,
    summary: `FLUX transformer${precision === 'exact' ? '' : ` (${precision} quantized)`}: <case>.{hidden_states,…} → <case>.expected`,
    acceptsLoras: true,
    async evaluate({ model, casePath, outPath, loras, devices }) {
      const cases = await SafetensorsFile.open(casePath);
      const worker = new InferenceWorker();
      try {
        const transformer = await FluxTransformer.load(worker, model, { precision, session: { device: devices.transformer } });
        if (loras.length > 0) {
          const parsed = await Promise.all(loras.map(async ({ path, scale }) => ({ lora: await parseLora(await openTensorSource(path), path), scale })));
          const { state, reports } = combineLoras(new FluxLoraTargets(transformer.config), parsed);
          for (const r of reports.filter((x) => x.unmatched.length > 0)) {
            process.stderr.write(`warning: LoRA ${r.label}: ${r.unmatched.length} tensor(s) not applied: ${r.unmatched.join(', ')}\n`);
          }
          await transformer.setLowRank(state);
        }
        const outputs: TensorToWrite[] = [];
        for (const prefix of casePrefixes(cases, 'hidden_states')) {
          const read = (name: string) => cases.readFloat32(`${prefix}.${name}`);
          const tensor = async (name: string) => float32Tensor(cases.info(`${prefix}.${name}`).shape, await read(name));
          const hasGuidance = cases.has(`${prefix}.guidance`);
          const velocity = await transformer.forward({
            hiddenStates: await tensor('hidden_states'),
            encoderHiddenStates: await tensor('encoder_hidden_states'),
            pooledProjections: await tensor('pooled_projections'),
            timestep: Array.from(await read('timestep')),
            ...(hasGuidance ? { guidance: Array.from(await read('guidance')) } : {}),
            imgIds: await read('img_ids'),
            txtIds: await read('txt_ids'),
          });
          outputs.push({ name: `${prefix}.expected`, dtype: 'F32', shape: velocity.dims, data: velocity.data as Float32Array });
        }
        await writeSafetensors(outPath, outputs, { component: 'transformer', precision, model });
      } finally {
        await worker.close();
      }
    },
  };
}
