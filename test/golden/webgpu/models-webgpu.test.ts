/**
 * The golden cases on onnxruntime's WebGPU provider (lavapipe in CI), at the CPU tolerances:
 * the components whose graphs needed a WebGPU form (docs/webgpu.md) — attention over ≥ 32 keys
 * (T5's 140-token case, the VAE's mid-block), no-LoRA low-rank inputs (CLIP, the transformer),
 * one LoRA bound at run time, and the txt2img pipeline end to end.
 */
import { it } from 'vitest';
import { FluxTransformer } from '../../../src/models/flux/transformer.js';
import { ClipTextEncoder } from '../../../src/models/text/clip-text.js';
import { T5Encoder } from '../../../src/models/text/t5-encoder.js';
import { Vae } from '../../../src/models/vae/autoencoder.js';
import { evaluatePipelineCase } from '../../../src/eval/pipeline-eval.js';
import { casePrefixes } from '../../../src/eval/transformer-eval.js';
import { combineLoras } from '../../../src/lora/apply.js';
import { FluxLoraTargets } from '../../../src/lora/flux-targets.js';
import { parseLora } from '../../../src/lora/formats.js';
import { float32Tensor, int64Tensor } from '../../../src/onnx/tensor-data.js';
import { openTensorSource, SafetensorsFile } from '../../../src/weights/safetensors.js';
import { goldenCase, loraCase } from '../../helpers/flux-cases.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';
import { describeWebGpu } from '../../helpers/webgpu.js';

const worker = useWorker();
const webgpu = { device: 'webgpu' } as const;
/** The CPU goldens' tolerance: lavapipe computes in float32 and lands within it (measured maxima in docs/webgpu.md). */
const TOL = 1e-5;

describeWebGpu('golden cases on the WebGPU provider', () => {
  it('FLUX transformer, both layouts, without and with a LoRA', async () => {
    for (const layout of ['bfl', 'diffusers'] as const) {
      const model = await FluxTransformer.load(worker(), goldenPath(`transformer_A_${layout}.safetensors`), { session: webgpu });
      try {
        const { inputs, expected } = await goldenCase('A', 0);
        expectAllClose((await model.forward(inputs)).data as Float32Array, expected, TOL, TOL, `A/${layout}`);
        if (layout !== 'bfl') continue;
        const file = goldenPath('lora_peft_r4.safetensors');
        const { state } = combineLoras(new FluxLoraTargets(model.config), [{ lora: await parseLora(await openTensorSource(file), file), scale: 0.7 }]);
        await model.setLowRank(state);
        const lora = await loraCase();
        expectAllClose((await model.forward(lora.inputs)).data as Float32Array, await lora.expected('peft'), TOL, TOL, 'peft LoRA at 0.7');
      } finally {
        await model.release();
      }
    }
  });

  it('T5 (12 and 140 tokens) and CLIP (batch of 2) text encoders', async () => {
    const t5 = await T5Encoder.load(worker(), goldenPath('t5_weights.safetensors'), { session: webgpu });
    const clip = await ClipTextEncoder.load(worker(), goldenPath('clip_weights.safetensors'), webgpu);
    try {
      for (const [encoder, file] of [
        ['t5', 't5_cases'],
        ['clip', 'clip_cases'],
      ] as const) {
        const cases = await SafetensorsFile.open(goldenPath(`${file}.safetensors`));
        for (const k of casePrefixes(cases, 'input_ids')) {
          const ids = int64Tensor(cases.info(`${k}.input_ids`).shape, await cases.readInt64(`${k}.input_ids`));
          const hidden = encoder === 't5' ? await t5.encode(ids) : (await clip.encode(ids)).lastHiddenState;
          expectAllClose(hidden.data as Float32Array, await cases.readFloat32(`${k}.expected_last_hidden_state`), TOL, TOL, `${encoder} ${k}`);
        }
      }
    } finally {
      await t5.release();
      await clip.release();
    }
  });

  it('VAE encode and decode', async () => {
    const vae = await Vae.load(worker(), goldenPath('vae_bfl.safetensors'), webgpu);
    const cases = await SafetensorsFile.open(goldenPath('vae_cases.safetensors'));
    const read = (n: string) => cases.readFloat32(n);
    try {
      const { mean } = await vae.encode(float32Tensor(cases.info('encode.image').shape, await read('encode.image')));
      expectAllClose(mean.data as Float32Array, await read('encode.expected_mean'), TOL, TOL, 'mean');
      const decoded = await vae.decode(float32Tensor(cases.info('decode.latent_normalized').shape, await read('decode.latent_normalized')));
      expectAllClose(decoded.data as Float32Array, await read('decode.expected_image'), TOL, TOL, 'decoded');
    } finally {
      await vae.release();
    }
  });

  it('txt2img pipeline: 6 dev steps, final latents and decoded image', async () => {
    const casePath = goldenPath('pipeline_txt2img.safetensors');
    const golden = await SafetensorsFile.open(casePath);
    const outputs = await evaluatePipelineCase(worker(), casePath, goldenPath('.'), { transformer: 'webgpu', vae: 'webgpu' });
    for (const key of ['expected_final_latents_packed', 'expected_image']) {
      // The CPU pipeline test's tolerance (test/golden/pipeline/pipelines.test.ts).
      expectAllClose(outputs[key]?.data as Float32Array, await golden.readFloat32(key), 3e-5, 3e-5, key);
    }
  });
});
