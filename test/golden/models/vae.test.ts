import { describe, expect, it } from 'vitest';
import { Vae, VaeInputError } from '../../../src/models/vae/autoencoder.js';
import { float32Tensor } from '../../../src/onnx/tensor-data.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';

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

  it('decodes large latents in blended tiles that agree closely with an untiled decode', async () => {
    const vae = await Vae.load(worker(), goldenPath('vae_diffusers.safetensors'));
    const cases = await SafetensorsFile.open(goldenPath('vae_cases.safetensors'));
    // A smooth latent 40×56 built from the golden latent (tiles see realistic statistics).
    const base = await cases.readFloat32('decode.latent_normalized');
    const [h, w] = [40, 56];
    const latent = new Float32Array(4 * h * w);
    for (let c = 0; c < 4; c++)
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) latent[(c * h + y) * w + x] = base[(c * 16 + (y % 16)) * 24 + (x % 24)] as number;
    const input = float32Tensor([1, 4, h, w], latent);
    const whole = (await vae.decode(input)).data as Float32Array;
    const tiled = await vae.decode(input, { tiling: { maxUntiledCells: 0, tileSize: 24, tileOverlap: 8 } });
    expect(tiled.dims).toEqual([1, 3, 2 * h, 2 * w]);
    const diff = (tiled.data as Float32Array).map((v, i) => Math.abs(v - (whole[i] as number)));
    const mean = diff.reduce((s, v) => s + v, 0) / diff.length;
    // Tiles normalize with their own GroupNorm statistics, so they are close, not identical.
    expect(mean).toBeLessThan(0.02);
    expect(Math.max(...diff)).toBeLessThan(0.25);
    await vae.release();
  });

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
