/**
 * `flux-lora eval pipeline`: runs a golden end-to-end case (pipeline_txt2img, _img2img,
 * _img2img_posterior_mean, _inpaint) from its stored text embeddings, noise, image and mask,
 * with the transformer and VAE files the case names (`transformer_file`, `vae_file`) found in
 * the --model folder. Writes the golden names: `steps.latents_after`,
 * `expected_final_latents_packed`, `expected_final_latents_unpacked`, `expected_image`, and
 * for image modes `image_latents_packed`, `initial_latents_packed` (and `mask_packed`).
 */
import { join } from 'node:path';
import { FluxTransformer } from '../models/flux-transformer.js';
import { Vae } from '../models/vae.js';
import { InferenceWorker } from '../onnx/runner.js';
import { float32Tensor, type TensorData } from '../onnx/tensor-data.js';
import { noisedLatents } from '../pipeline/denoise.js';
import { generateLatents, type ImageStart } from '../pipeline/generate.js';
import { pack, packedMask, posteriorLatent, unpack } from '../pipeline/latents.js';
import { img2imgStart, sigmas } from '../pipeline/schedule.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import { writeSafetensors } from '../weights/safetensors-writer.js';
import type { Evaluator } from './registry.js';

function metaString(file: SafetensorsFile, key: string): string {
  const value = file.metadata[key];
  if (value === undefined) throw new Error(`${file.path}: metadata "${key}" is missing; not a golden pipeline case`);
  return value;
}

/** Runs one golden pipeline case file with the models in `modelFolder`; returns its outputs by golden name. */
export async function evaluatePipelineCase(worker: InferenceWorker, casePath: string, modelFolder: string): Promise<Record<string, TensorData>> {
  const file = await SafetensorsFile.open(casePath);
  const read = async (name: string) => float32Tensor(file.info(name).shape, await file.readFloat32(name));
  const mode = metaString(file, 'mode');
  const transformer = await FluxTransformer.load(worker, join(modelFolder, metaString(file, 'transformer_file')));
  const vae = await Vae.load(worker, join(modelFolder, metaString(file, 'vae_file')));
  try {
    const [h, w] = JSON.parse(metaString(file, 'latent_hw')) as [number, number];
    const channels = vae.config.latentChannels;
    const steps = Number(metaString(file, 'num_inference_steps'));
    const schedule = sigmas(steps, (h / 2) * (w / 2), transformer.config.guidanceEmbed ? 'dev' : 'schnell');
    const noise = pack((await read('noise')).data as Float32Array, 1, channels, h, w);
    const outputs: Record<string, TensorData> = {};
    let image: ImageStart | undefined;
    if (mode !== 'txt2img') {
      const startIndex = img2imgStart(steps, Number(metaString(file, 'strength')));
      const { mean, logvar } = await vae.encode(await read('vae_input_image'));
      const epsilon = (await read('posterior_noise')).data as Float32Array;
      const latent = posteriorLatent(mean.data as Float32Array, logvar.data as Float32Array, epsilon, vae.config.shiftFactor, vae.config.scalingFactor);
      const imageLatents = pack(latent, 1, channels, h, w);
      image = { imageLatents, startIndex };
      const packedShape = [1, noise.length / (channels * 4), channels * 4];
      outputs.image_latents_packed = float32Tensor(packedShape, imageLatents);
      outputs.initial_latents_packed = float32Tensor(packedShape, noisedLatents(imageLatents, noise, schedule[startIndex] as number));
      if (mode === 'inpaint') {
        const maskImage = await read('mask_image_01');
        const [, , H, W] = maskImage.dims as [number, number, number, number];
        const pixels = Uint8Array.from(maskImage.data as Float32Array, (v) => (v >= 0.5 ? 1 : 0));
        image.mask = packedMask(pixels, W, H, vae.scaleFactor, channels);
        outputs.mask_packed = float32Tensor(packedShape, image.mask);
      }
    }
    const after: Float32Array[] = [];
    const final = await generateLatents({
      transformer,
      text: { t5: await read('prompt_embeds'), pooled: await read('pooled_prompt_embeds') },
      latentHeight: h,
      latentWidth: w,
      sigmas: schedule,
      guidance: Number(metaString(file, 'guidance_scale')),
      noise,
      image,
      onStep: (info) => after.push(Float32Array.from(info.latents)),
    });
    const tokens = final.length / (channels * 4);
    const stacked = new Float32Array(after.length * final.length);
    after.forEach((x, i) => stacked.set(x, i * final.length));
    outputs['steps.latents_after'] = float32Tensor([after.length, tokens, channels * 4], stacked);
    outputs.expected_final_latents_packed = float32Tensor([1, tokens, channels * 4], final);
    const unpacked = float32Tensor([1, channels, h, w], unpack(final, 1, channels, h, w));
    outputs.expected_final_latents_unpacked = unpacked;
    outputs.expected_image = await vae.decode(unpacked);
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
  async evaluate({ model, casePath, outPath }) {
    const worker = new InferenceWorker();
    try {
      const outputs = await evaluatePipelineCase(worker, casePath, model);
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
