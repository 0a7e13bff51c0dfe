/**
 * Peak resident memory of a session whose ≥1 GB of weights are external data inside a
 * safetensors file: the weights must be resident once (packed or mmapped), never twice.
 * Each variant runs in a fresh child process so its peak (VmHWM) is its own.
 * Usage: npm run bench:external-memory
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphBuilder } from '../src/onnx/graph.js';
import { matmul } from '../src/onnx/ops/linalg.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { float32Tensor } from '../src/onnx/tensor-data.js';
import { externalRef, floatWeight } from '../src/models/common/stored-weights.js';
import { f32ToBf16 } from '../src/weights/dtypes.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { writeSafetensors } from '../src/weights/safetensors-writer.js';
import { randomFloats } from './random.js';

const D = 3072;
const LAYERS = 28; // 28 × 3072² × 4 B = 1.06 GB in float32
const TOKENS = 64;

function memory(): { rss: number; anon: number; file: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), peak: kb('VmHWM') };
}

async function measure(path: string, prepack: boolean): Promise<void> {
  const before = memory();
  const file = await SafetensorsFile.open(path);
  const g = new GraphBuilder('bench-external');
  let h = g.input('x', 'float32', [TOKENS, D]);
  for (let i = 0; i < LAYERS; i++) h = matmul(g, h, floatWeight(g, `w${i}`, externalRef(file.info(`w${i}`)), h));
  g.output(h, 'y');
  const worker = new InferenceWorker();
  const t0 = performance.now();
  const session = await worker.load(g.build(), { prepack });
  const created = performance.now() - t0;
  const afterLoad = memory();
  const t1 = performance.now();
  await session.run({ x: float32Tensor([TOKENS, D], randomFloats(TOKENS * D, 9)) });
  const ran = performance.now() - t1;
  const afterRun = memory();
  console.log(JSON.stringify({ before, afterLoad, afterRun, created, ran }));
  await worker.close();
}

async function writeWeights(path: string, dtype: 'F32' | 'BF16'): Promise<void> {
  await writeSafetensors(
    path,
    Array.from({ length: LAYERS }, (_, i) => ({
      name: `w${i}`,
      dtype,
      shape: [D, D],
      data: async function* () {
        const w = randomFloats(D * D, i + 1, Math.sqrt(3 / D));
        yield dtype === 'F32' ? new Uint8Array(w.buffer) : new Uint8Array(f32ToBf16(w).buffer);
      },
    })),
  );
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0).padStart(6)} MB`;

if (process.argv[2] === '--measure') {
  await measure(process.argv[3] as string, process.argv[4] === 'prepack');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'flux-lora-bench-mem-'));
  try {
    const f32 = join(dir, 'f32.safetensors');
    const bf16 = join(dir, 'bf16.safetensors');
    await writeWeights(f32, 'F32');
    await writeWeights(bf16, 'BF16');
    const self = fileURLToPath(import.meta.url);
    const variants = [
      { label: 'f32 file, prepacking on (default)', path: f32, prepack: true },
      { label: 'f32 file, prepacking off', path: f32, prepack: false },
      { label: 'bf16 file + in-graph Cast', path: bf16, prepack: true },
    ];
    console.log(`${LAYERS} MatMul weights [${D}x${D}], ${TOKENS} tokens; RSS deltas over the process baseline`);
    console.log(
      `${'variant'.padEnd(36)} ${'file'.padStart(9)} ${'load'.padStart(8)} ${'run'.padStart(8)} ${'anon'.padStart(9)} ${'mmapped'.padStart(9)} ${'peak'.padStart(9)} ${'peak/file'.padStart(9)}`,
    );
    for (const v of variants) {
      const child = spawnSync(process.execPath, [...process.execArgv, self, '--measure', v.path, v.prepack ? 'prepack' : 'noprepack'], {
        encoding: 'utf8',
      });
      if (child.status !== 0) throw new Error(`${v.label}: ${child.stderr}`);
      const r = JSON.parse(child.stdout.trim().split('\n').pop() as string);
      const size = statSync(v.path).size;
      const peak = r.afterRun.peak - r.before.rss;
      console.log(
        `${v.label.padEnd(36)} ${mb(size)} ${(r.created / 1000).toFixed(2).padStart(7)}s ${(r.ran / 1000).toFixed(2).padStart(7)}s ${mb(r.afterRun.anon - r.before.anon)} ${mb(r.afterRun.file - r.before.file)} ${mb(peak)} ${(peak / size).toFixed(2).padStart(9)}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
