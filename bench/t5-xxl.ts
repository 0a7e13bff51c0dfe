/**
 * T5-XXL encoder at real shape (4.76 B params, random bf16 weights in one file without metadata, so
 * the config is inferred), in each form go_fast could use: exact (float32 compute from the bf16 file),
 * int8 (8-bit MatMulNBits at accuracy level 4, prepacked), int8-mapped (the same 8-bit cache at level 0,
 * left mapped from the file) and int4. Each form runs in its own process: load, then two encodings of
 * the same prompt (the second is the warm time), the engine's memory after them (anonymous and
 * file-backed) and the error of its embedding against exact's, on the same ids (exact's from an earlier
 * run in the same folder when this one leaves exact out).
 * Usage: npx tsx bench/t5-xxl.ts [--dir <scratch folder: models/ as bench/real-shape-models.ts writes it>] [--tokens 256] [--forms exact,int8,int8-mapped,int4]
 */
import '../src/engine-telemetry-off.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { T5Encoder, type T5Precision } from '../src/models/text/t5-encoder.js';
import { InferenceWorker } from '../src/onnx/runner.js';
import { int64Tensor } from '../src/onnx/tensor-data.js';
import { GIB, processMemory } from './process-memory.js';
import { T5_XXL, writeRealShapeModels } from './real-shape-models.js';

async function measure(path: string, precision: T5Precision, cacheDir: string, tokens: number, embeddingFile: string): Promise<void> {
  const worker = new InferenceWorker();
  const t0 = performance.now();
  const t5 = await T5Encoder.load(worker, path, { precision, cacheDir });
  const loadMs = performance.now() - t0;
  const ids = int64Tensor(
    [1, tokens],
    Array.from({ length: tokens }, (_, i) => (i < 60 ? 100 + i * 37 : i === 60 ? 1 : 0)),
  );
  const encodeMs: number[] = [];
  let embedding: Float32Array = new Float32Array();
  for (let i = 0; i < 2; i++) {
    const t1 = performance.now();
    embedding = (await t5.encode(ids)).data as Float32Array;
    encodeMs.push(performance.now() - t1);
  }
  writeFileSync(embeddingFile, embedding);
  const memory = processMemory(worker.status.pid as number);
  await t5.release();
  await worker.close();
  console.log(JSON.stringify({ loadMs, encodeMs, memory }));
}

/** Exact's embedding from an earlier run in the same folder (exact is the slow form), when there is one. */
function storedEmbedding(file: string): Float32Array | undefined {
  return existsSync(file) ? new Float32Array(readFileSync(file).buffer.slice(0)) : undefined;
}

const { values, positionals } = parseArgs({
  options: {
    measure: { type: 'boolean' },
    dir: { type: 'string' },
    tokens: { type: 'string', default: '256' },
    forms: { type: 'string', default: 'exact,int8,int8-mapped,int4' },
  },
  allowPositionals: true,
});
const tokens = Number(values.tokens);
if (values.measure) {
  const [path, precision, cacheDir, embeddingFile] = positionals as [string, T5Precision, string, string];
  await measure(path, precision, cacheDir, tokens, embeddingFile);
} else {
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'flux-lora-bench-t5-'));
  const models = join(dir, 'models');
  mkdirSync(models, { recursive: true });
  await writeRealShapeModels(models);
  const path = join(models, 't5xxl_bf16.safetensors');
  const flops =
    2 * tokens * T5_XXL.layers * (4 * T5_XXL.dModel * T5_XXL.dModel + 3 * T5_XXL.dModel * T5_XXL.dFf) + T5_XXL.layers * 4 * tokens * tokens * T5_XXL.dModel;
  const embeddings = new Map<string, Float32Array>();
  try {
    for (const precision of values.forms.split(',') as T5Precision[]) {
      const embeddingFile = join(dir, `t5-embedding-${precision}.f32`);
      const args = [fileURLToPath(import.meta.url), '--measure', '--tokens', String(tokens), path, precision, join(dir, 'cache'), embeddingFile];
      const child = spawnSync(process.execPath, [...process.execArgv, ...args], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`${precision}: ${child.stderr}`);
      const r = JSON.parse(child.stdout.trim().split('\n').pop() as string);
      const embedding = storedEmbedding(embeddingFile) as Float32Array;
      embeddings.set(precision, embedding);
      const exact = embeddings.get('exact') ?? storedEmbedding(join(dir, 't5-embedding-exact.f32'));
      let error = '';
      if (exact !== undefined && precision !== 'exact') {
        const diffs = embedding.map((v, i) => Math.abs(v - (exact[i] as number)));
        const max = diffs.reduce((m, v) => Math.max(m, v), 0);
        error = ` | against exact: max ${max.toFixed(3)}, mean ${(diffs.reduce((s, v) => s + v, 0) / diffs.length).toFixed(4)}`;
      }
      const [first, warm] = r.encodeMs as [number, number];
      console.log(
        `${precision.padEnd(12)} load ${(r.loadMs / 1000).toFixed(1).padStart(6)} s | encode ${tokens} tokens: first ${(first / 1000).toFixed(1)} s, warm ${(warm / 1000).toFixed(1)} s (${(flops / (warm / 1000) / 1e9).toFixed(0)} GFLOP/s) | engine after: ${(r.memory.anon / GIB).toFixed(2)} GiB anonymous, ${(r.memory.file / GIB).toFixed(2)} GiB file-backed, peak ${(r.memory.peak / GIB).toFixed(2)} GiB${error}`,
      );
    }
  } finally {
    if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}
