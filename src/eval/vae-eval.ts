/**
 * `flux-lora eval vae-encode | vae-decode`: runs the autoencoder on a golden VAE case file.
 *  - vae-encode: `encode.image` → `encode.expected_mean`, `encode.expected_logvar`,
 *    `encode.expected_latent_normalized`;
 *  - vae-decode: `decode.latent_normalized` → `decode.expected_image`.
 * Outputs carry the golden names so the result compares name by name with the reference.
 */
import { Vae } from '../models/vae/autoencoder.js';
import { InferenceWorker } from '../onnx/runner.js';
import { float32Tensor, type TensorData } from '../onnx/tensor-data.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import { writeSafetensors } from '../weights/safetensors-writer.js';
import type { EvalRequest, Evaluator } from './types.js';

async function withVae(request: EvalRequest, run: (vae: Vae, cases: SafetensorsFile) => Promise<Record<string, TensorData>>): Promise<void> {
  const cases = await SafetensorsFile.open(request.casePath);
  const worker = new InferenceWorker();
  try {
    const vae = await Vae.load(worker, request.model, { device: request.devices.vae });
    const outputs = await run(vae, cases);
    await writeSafetensors(
      request.outPath,
      Object.entries(outputs).map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.dims, data: t.data as Float32Array })),
      { component: 'vae', model: request.model },
    );
  } finally {
    await worker.close();
  }
}

async function input(cases: SafetensorsFile, name: string): Promise<TensorData> {
  return float32Tensor(cases.info(name).shape, await cases.readFloat32(name));
}

export const vaeEncodeEvaluator: Evaluator = {
  component: 'vae-encode',
  summary: 'FLUX autoencoder encoder: encode.image → encode.expected_{mean,logvar,latent_normalized}',
  acceptsLoras: false,
  evaluate: (request) =>
    withVae(request, async (vae, cases) => {
      const { mean, logvar } = await vae.encode(await input(cases, 'encode.image'));
      return { 'encode.expected_mean': mean, 'encode.expected_logvar': logvar, 'encode.expected_latent_normalized': vae.normalize(mean) };
    }),
};

export const vaeDecodeEvaluator: Evaluator = {
  component: 'vae-decode',
  summary: 'FLUX autoencoder decoder: decode.latent_normalized → decode.expected_image',
  acceptsLoras: false,
  evaluate: (request) =>
    withVae(request, async (vae, cases) => ({ 'decode.expected_image': await vae.decode(await input(cases, 'decode.latent_normalized')) })),
};
