import type { FluxForwardInputs } from '../../src/models/flux/transformer.js';
import { float32Tensor } from '../../src/onnx/tensor-data.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { goldenPath } from './golden.js';

/** Inputs and expected output of golden transformer case k of config A (dev-like) or B (schnell-like). */
export async function goldenCase(config: 'A' | 'B', k: number): Promise<{ inputs: FluxForwardInputs; expected: Float32Array }> {
  const file = await SafetensorsFile.open(goldenPath(`transformer_${config}_cases.safetensors`));
  const read = (name: string) => file.readFloat32(`case${k}.${name}`);
  const tensor = async (name: string) => float32Tensor(file.info(`case${k}.${name}`).shape, await read(name));
  const inputs: FluxForwardInputs = {
    hiddenStates: await tensor('hidden_states'),
    encoderHiddenStates: await tensor('encoder_hidden_states'),
    pooledProjections: await tensor('pooled_projections'),
    timestep: Array.from(await read('timestep')),
    imgIds: await read('img_ids'),
    txtIds: await read('txt_ids'),
  };
  if (config === 'A') inputs.guidance = Array.from(await read('guidance'));
  return { inputs, expected: await read('expected') };
}

/** The LoRA golden cases' shared input (config A) and the expected output of each named case (e.g. `peft`, at strength 0.7). */
export async function loraCase(): Promise<{ inputs: FluxForwardInputs; expected: (name: string) => Promise<Float32Array> }> {
  const file = await SafetensorsFile.open(goldenPath('lora_cases.safetensors'));
  const read = (n: string) => file.readFloat32(n);
  const tensor = async (n: string) => float32Tensor(file.info(`input.${n}`).shape, await read(`input.${n}`));
  return {
    inputs: {
      hiddenStates: await tensor('hidden_states'),
      encoderHiddenStates: await tensor('encoder_hidden_states'),
      pooledProjections: await tensor('pooled_projections'),
      timestep: Array.from(await read('input.timestep')),
      guidance: Array.from(await read('input.guidance')),
      imgIds: await read('input.img_ids'),
      txtIds: await read('input.txt_ids'),
    },
    expected: (name) => read(`${name}.expected`),
  };
}
