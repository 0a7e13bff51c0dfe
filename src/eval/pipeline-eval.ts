/**
 * `flux-lora eval pipeline`: runs a golden end-to-end case (pipeline_txt2img, _img2img,
 * _img2img_posterior_mean, _inpaint) from its stored text embeddings, noise, image and mask,
 * with the transformer and VAE files the case names (`transformer_file`, `vae_file`) found in
 * the --model folder. Writes the golden names: `steps.latents_after`,
 * `expected_final_latents_packed`, `expected_final_latents_unpacked`, `expected_image`, and
 * for image modes `image_latents_packed`, `initial_latents_packed` (and `mask_packed`).
 */
import { join } from 'node:path';
import { FluxTransformer } from '../models/flux/transformer.js';
import { Vae } from '../models/vae/autoencoder.js';
import { InferenceWorker } from '../onnx/runner.js';
import { float32Tensor, type TensorData } from '../onnx/tensor-data.js';
import { runFluxPipeline } from '../pipeline/flux-pipeline.js';
import { unpack } from '../pipeline/latents.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import { writeSafetensors } from '../weights/safetensors-writer.js';
import type { EvalRequest, Evaluator } from './types.js';

function metaString(file: SafetensorsFile, key: string): string {
  const value = file.metadata[key];
  if (value === undefined) throw new Error(`${file.path}: metadata "${key}" is missing; not a golden pipeline case`);
  return value;
}

/**
 * Runs one golden pipeline case file through the product's pipeline, with the case's stored
 * embeddings and draws and the models in `modelFolder`; returns its outputs by golden name.
 */
export async function evaluatePipelineCase(
  worker: InferenceWorker,
  casePath: string,
  modelFolder: string,
  devices: Pick<EvalRequest['devices'], 'transformer' | 'vae'> = { transformer: 'cpu', vae: 'cpu' },
): Promise<Record<string, TensorData>> {
  const file = await SafetensorsFile.open(casePath);
  const read = async (name: string) => float32Tensor(file.info(name).shape, await file.readFloat32(name));
  const mode = metaString(file, 'mode');
  const transformer = await FluxTransformer.load(worker, join(modelFolder, metaString(file, 'transformer_file')), { session: { device: devices.transformer } });
  const vae = await Vae.load(worker, join(modelFolder, metaString(file, 'vae_file')), { device: devices.vae });
  try {
    const [h, w] = JSON.parse(metaString(file, 'latent_hw')) as [number, number];
    const noise = (await read('noise')).data as Float32Array;
    const posterior = file.has('posterior_noise') ? ((await read('posterior_noise')).data as Float32Array) : undefined;
    let image: { pixels: TensorData; strength: number; mask?: Uint8Array } | undefined;
    if (mode !== 'txt2img') {
      image = { pixels: await read('vae_input_image'), strength: Number(metaString(file, 'strength')) };
      if (mode === 'inpaint') image.mask = Uint8Array.from((await read('mask_image_01')).data as Float32Array, (v) => (v >= 0.5 ? 1 : 0));
    }
    const text = { t5: await read('prompt_embeds'), pooled: await read('pooled_prompt_embeds') };
    const after: Float32Array[] = [];
    const result = await runFluxPipeline(
      { vaeConfig: vae.config, vae: async () => vae, transformer: async () => transformer, encodePrompt: async () => text },
      {
        width: w * vae.scaleFactor,
        height: h * vae.scaleFactor,
        numOutputs: 1,
        steps: Number(metaString(file, 'num_inference_steps')),
        guidance: Number(metaString(file, 'guidance_scale')),
        image,
        noise: () => ({ noise, posterior }),
        onStep: (_, info) => after.push(Float32Array.from(info.latents)),
      },
    );
    const output = result.outputs[0] as (typeof result.outputs)[number];
    const channels = vae.config.latentChannels;
    const packedShape = [1, output.latents.length / (channels * 4), channels * 4];
    const outputs: Record<string, TensorData> = {};
    const stacked = new Float32Array(after.length * output.latents.length);
    after.forEach((x, i) => stacked.set(x, i * output.latents.length));
    outputs['steps.latents_after'] = float32Tensor([after.length, ...packedShape.slice(1)], stacked);
    outputs.expected_final_latents_packed = float32Tensor(packedShape, output.latents);
    outputs.expected_final_latents_unpacked = float32Tensor([1, channels, h, w], unpack(output.latents, 1, channels, h, w));
    outputs.expected_image = output.image;
    if (output.imageLatents !== undefined) {
      outputs.image_latents_packed = float32Tensor(packedShape, output.imageLatents);
      outputs.initial_latents_packed = float32Tensor(packedShape, output.initial);
    }
    if (result.mask !== undefined) outputs.mask_packed = float32Tensor(packedShape, result.mask);
    return outputs;
  } finally {
    await transformer.release();
    await vae.release();
  }
}

export const pipelineEvaluator: Evaluator = {
  component: 'pipeline',
  summary: 'end-to-end txt2img / img2img / inpaint golden case; --model is the folder with the files the case names',
  acceptsLoras: false,
  async evaluate({ model, casePath, outPath, devices }) {
    const worker = new InferenceWorker();
    try {
      const outputs = await evaluatePipelineCase(worker, casePath, model, devices);
      await writeSafetensors(
        outPath,
        Object.entries(outputs).map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.dims, data: t.data as Float32Array })),
        { component: 'pipeline', case: casePath },
      );
    } finally {
      await worker.close();
    }
  },
};
