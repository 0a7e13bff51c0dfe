import { describe, expect, it } from 'vitest';
import { Vae, VaeInputError } from '../../src/models/vae.js';
import { float32Tensor } from '../../src/onnx/tensor-data.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../helpers/golden.js';
import { useWorker } from '../helpers/run-graph.js';

const worker = useWorker();

describe('FLUX autoencoder against the golden cases', () => {
  for (const layout of ['bfl', 'diffusers'] as const) {
    it(`encodes and decodes within atol 1e-5 + rtol 1e-5, ${layout} layout`, async () => {
      const vae = await Vae.load(worker(), goldenPath(`vae_${layout}.safetensors`));
      const cases = await SafetensorsFile.open(goldenPath('vae_cases.safetensors'));
      const read = (n: string) => cases.readFloat32(n);
      expect(vae.checkpoint.layout).toBe(layout);
      expect(vae.scaleFactor).toBe(2);
      const image = float32Tensor(cases.info('encode.image').shape, await read('encode.image'));
      const { mean, logvar } = await vae.encode(image);
      expect(mean.dims).toEqual([2, 4, 16, 24]);
      expectAllClose(mean.data as Float32Array, await read('encode.expected_mean'), 1e-5, 1e-5, 'mean');
      expectAllClose(logvar.data as Float32Array, await read('encode.expected_logvar'), 1e-5, 1e-5, 'logvar');
      expectAllClose(vae.normalize(mean).data as Float32Array, await read('encode.expected_latent_normalized'), 1e-5, 1e-5, 'normalized');
      const decoded = await vae.decode(float32Tensor(cases.info('decode.latent_normalized').shape, await read('decode.latent_normalized')));
      expect(decoded.dims).toEqual([1, 3, 32, 48]);
      expectAllClose(decoded.data as Float32Array, await read('decode.expected_image'), 1e-5, 1e-5, 'decoded');
      await vae.release();
    });
  }

  it('rejects inputs of the wrong shape, naming them', async () => {
    const vae = await Vae.load(worker(), goldenPath('vae_diffusers.safetensors'));
    await expect(vae.encode(float32Tensor([1, 3, 5, 8], new Float32Array(120)))).rejects.toThrow(VaeInputError);
    await expect(vae.encode(float32Tensor([1, 4, 4, 4], new Float32Array(64)))).rejects.toThrow(
      'input "image" must be float32 [batch, 3, height, width] with height and width multiples of 2, got float32 [1, 4, 4, 4]',
    );
    await expect(vae.decode(float32Tensor([1, 3, 4, 4], new Float32Array(48)))).rejects.toThrow(/input "latent" must be float32 \[batch, 4, height, width\]/);
    await vae.release();
  });
});
