/**
 * Real-shape FLUX autoencoder (random f32 weights, diffusers layout): decode 1024×1024 and
 * 1440×1440 — time and peak RSS, each in its own child process. 1440² is above the default
 * untiled limit (1024²), so it decodes in blended tiles; it is also measured untiled.
 * Usage: npx tsx bench/vae.ts
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Vae } from '../src/models/vae/autoencoder.js';
import { FLUX_VAE_CONFIG } from '../src/models/vae/config.js';
import { vaeTensors } from '../src/models/vae/layout.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { float32Tensor } from '../src/onnx/tensor-data.js';
import { randomFloats } from './random.js';
import { writeRandomCheckpoint } from './random-checkpoint.js';

function peakRss(): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
}

async function measure(folder: string, size: number, tiled: boolean): Promise<void> {
  const worker = new InferenceWorker();
  const vae = await Vae.load(worker, folder);
  const side = size / vae.scaleFactor;
  const latent = float32Tensor([1, 16, side, side], randomFloats(16 * side * side, 3));
  const t = performance.now();
  const image = await vae.decode(latent, { tiling: { maxUntiledCells: tiled ? 128 * 128 : Infinity } });
  const ms = performance.now() - t;
  await vae.release();
  await worker.close();
  console.log(JSON.stringify({ ms, peak: peakRss(), dims: image.dims }));
}

if (process.argv[2] === '--measure') {
  await measure(process.argv[3] as string, Number(process.argv[4]), process.argv[5] === 'tiled');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'flux-lora-bench-vae-'));
  try {
    const folder = join(dir, 'vae');
    mkdirSync(folder);
    const c = FLUX_VAE_CONFIG;
    writeFileSync(
      join(folder, 'config.json'),
      JSON.stringify({
        block_out_channels: c.blockOutChannels,
        layers_per_block: c.layersPerBlock,
        latent_channels: c.latentChannels,
        norm_num_groups: c.groups,
        scaling_factor: c.scalingFactor,
        shift_factor: c.shiftFactor,
      }),
    );
    await writeRandomCheckpoint(
      join(folder, 'diffusion_pytorch_model.safetensors'),
      vaeTensors(c).map((t) => [t.name, t.shape]),
      'F32',
    );
    const self = fileURLToPath(import.meta.url);
    for (const [size, tiled] of [
      [1024, true],
      [1440, true],
      [1440, false],
    ] as const) {
      const child = spawnSync(process.execPath, [...process.execArgv, self, '--measure', folder, String(size), tiled ? 'tiled' : 'whole'], {
        encoding: 'utf8',
      });
      if (child.status !== 0) {
        console.log(`${size}×${size} ${tiled ? 'auto' : 'untiled'}: failed (${child.stderr.trim().split('\n').pop()})`);
        continue;
      }
      const r = JSON.parse(child.stdout.trim().split('\n').pop() as string);
      const mode = size * size > 1024 * 1024 && tiled ? 'tiled (4 tiles of 98², overlap ≥ 16)' : 'untiled';
      console.log(`decode ${size}×${size} ${mode.padEnd(34)} ${(r.ms / 1000).toFixed(1).padStart(6)} s   peak RSS ${(r.peak / 2 ** 30).toFixed(2)} GiB`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
