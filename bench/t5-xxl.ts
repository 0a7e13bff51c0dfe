/**
 * T5-XXL encoder at real shape (4.76 B params, random bf16 weights in one file without
 * metadata, so the config is inferred): encode one 512-token prompt in exact mode (float32
 * compute from the bf16 file, weights cast one at a time) and in 8-bit go_fast mode (cold,
 * including quantization, then warm) — time and peak RSS, each in its own child process.
 * Usage: npx tsx bench/t5-xxl.ts [--dir <scratch folder, ≥ 15 GB free>]
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { T5_KIND, T5Encoder, type T5Config, type T5Precision } from '../src/models/text/t5-encoder.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { int64Tensor } from '../src/onnx/tensor-data.js';
import { writeRandomCheckpoint } from './random-checkpoint.js';

const XXL: T5Config = { vocabSize: 32128, dModel: 4096, dKv: 64, heads: 64, dFf: 10240, layers: 24, buckets: 32, maxDistance: 128, eps: 1e-6 };
const TOKENS = 512;

function status(key: string): number {
  return Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
}

async function measure(path: string, precision: T5Precision, cacheDir: string): Promise<void> {
  const worker = new InferenceWorker();
  const t0 = performance.now();
  const t5 = await T5Encoder.load(worker, path, { precision, cacheDir });
  const loadMs = performance.now() - t0;
  const ids = int64Tensor(
    [1, TOKENS],
    Array.from({ length: TOKENS }, (_, i) => (i < 60 ? 100 + i * 37 : i === 60 ? 1 : 0)),
  );
  const t1 = performance.now();
  await t5.encode(ids);
  const encodeMs = performance.now() - t1;
  const [anon, file] = [status('RssAnon'), status('RssFile')];
  await t5.release();
  await worker.close();
  console.log(JSON.stringify({ loadMs, encodeMs, anon, file, peak: status('VmHWM') }));
}

if (process.argv[2] === '--measure') {
  await measure(process.argv[3] as string, process.argv[4] as T5Precision, process.argv[5] as string);
} else {
  const dirArg = process.argv.indexOf('--dir');
  const dir = dirArg > 0 ? (process.argv[dirArg + 1] as string) : mkdtempSync(join(tmpdir(), 'flux-lora-bench-t5-'));
  mkdirSync(dir, { recursive: true });
  try {
    const path = join(dir, 't5xxl_bf16.safetensors');
    const t = performance.now();
    await writeRandomCheckpoint(path, [...T5_KIND.expected(XXL).required, ['shared.weight', [XXL.vocabSize, XXL.dModel]]], 'BF16');
    console.log(`wrote a random T5-XXL encoder (bf16, 9.5 GB) in ${((performance.now() - t) / 1000).toFixed(0)} s`);
    const self = fileURLToPath(import.meta.url);
    const flops = 2 * TOKENS * XXL.layers * (4 * XXL.dModel * XXL.dModel + 3 * XXL.dModel * XXL.dFf) + XXL.layers * 4 * TOKENS * TOKENS * XXL.dModel;
    for (const [label, precision] of [
      ['exact (bf16 file, f32 compute)', 'exact'],
      ['go_fast int8, cold cache', 'int8'],
      ['go_fast int8, warm cache', 'int8'],
    ] as const) {
      const child = spawnSync(process.execPath, [...process.execArgv, self, '--measure', path, precision, join(dir, 'cache')], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`${label}: ${child.stderr}`);
      const r = JSON.parse(child.stdout.trim().split('\n').pop() as string);
      console.log(
        `${label.padEnd(32)} load ${(r.loadMs / 1000).toFixed(1).padStart(6)} s | encode ${TOKENS} tokens ${(r.encodeMs / 1000).toFixed(1).padStart(5)} s (${(flops / (r.encodeMs / 1000) / 1e9).toFixed(0)} GFLOP/s) | peak RSS ${(r.peak / 2 ** 30).toFixed(2)} GiB (after encoding: ${(r.anon / 2 ** 30).toFixed(2)} GiB anonymous, ${(r.file / 2 ** 30).toFixed(2)} GiB file-backed)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
