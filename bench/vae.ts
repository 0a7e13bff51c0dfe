/**
 * Real-shape FLUX autoencoder (random f32 weights, diffusers layout): decode 1024×1024 and
 * 1440×1440 — time and peak RSS, each in its own child process. 1440² is above the default
 * untiled limit (1024²), so it decodes in blended tiles; it is also measured untiled.
 * --first-vs-warm instead decodes 512×512 three times in one process, with and without the
 * memory arena, and prints for each decode its wall time and the engine process's CPU time,
 * minor and major page faults (what a first decode pays that a warm one does not).
 * Usage: npx tsx bench/vae.ts [--first-vs-warm]
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

/** The engine's cumulative minor/major faults and CPU seconds (/proc/<pid>/stat fields 10, 12, 14 + 15). */
function processCounters(pid: number): { minor: number; major: number; cpu: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const at = (n: number) => Number(fields[n - 3]);
  return { minor: at(10), major: at(12), cpu: (at(14) + at(15)) / 100 };
}

async function firstVsWarm(folder: string, arena: boolean): Promise<void> {
  const worker = new InferenceWorker();
  const vae = await Vae.load(worker, folder, { memoryArena: arena });
  const pid = worker.status.pid as number;
  const side = 512 / vae.scaleFactor;
  const decodes = [];
  for (let i = 0; i < 3; i++) {
    const latent = float32Tensor([1, 16, side, side], randomFloats(16 * side * side, 3 + i));
    const before = processCounters(pid);
    const t = performance.now();
    await vae.decode(latent);
    const ms = performance.now() - t;
    const after = processCounters(pid);
    decodes.push({ ms, cpu: after.cpu - before.cpu, minor: after.minor - before.minor, major: after.major - before.major });
  }
  await vae.release();
  await worker.close();
  console.log(JSON.stringify(decodes));
}

if (process.argv[2] === '--measure') {
  await measure(process.argv[3] as string, Number(process.argv[4]), process.argv[5] === 'tiled');
} else if (process.argv[2] === '--first-vs-warm-child') {
  await firstVsWarm(process.argv[3] as string, process.argv[4] === 'arena');
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
    if (process.argv[2] === '--first-vs-warm') {
      for (const arena of [false, true]) {
        const child = spawnSync(process.execPath, [...process.execArgv, self, '--first-vs-warm-child', folder, arena ? 'arena' : 'no-arena'], {
          encoding: 'utf8',
        });
        if (child.status !== 0) throw new Error(child.stderr);
        const decodes = JSON.parse(child.stdout.trim().split('\n').pop() as string) as { ms: number; cpu: number; minor: number; major: number }[];
        const cells = decodes.map(
          (d, i) => `#${i + 1} ${(d.ms / 1000).toFixed(1)} s wall, ${d.cpu.toFixed(1)} CPU s, ${(d.minor / 1e6).toFixed(2)} M minor / ${d.major} major faults`,
        );
        console.log(`decode 512×512, arena ${arena ? 'on ' : 'off'}: ${cells.join(' | ')}`);
      }
    }
    const sizes =
      process.argv[2] === '--first-vs-warm'
        ? []
        : ([
            [1024, true],
            [1440, true],
            [1440, false],
          ] as const);
    for (const [size, tiled] of sizes) {
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
