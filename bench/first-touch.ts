/**
 * What this machine charges for memory a process touches for the first time, the cost a fresh engine pays for its
 * 12 GB of prepacked go_fast weights (docs/onnxruntime.md §10.11): each run is a fresh process that fills --gib
 * GiB of new memory, then fills the same memory again, and prints the wall, user and system seconds of both.
 * Usage: npx tsx bench/first-touch.ts [--gib 4] [--runs 3]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GIB } from './process-memory.js';

function fill(buffers: Buffer[], value: number): string {
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (const b of buffers) b.fill(value);
  const used = process.cpuUsage(cpu);
  const gib = buffers.length;
  const wall = (performance.now() - start) / 1000;
  return `${wall.toFixed(2)} s (${(gib / wall).toFixed(2)} GiB/s), user ${(used.user / 1e6).toFixed(2)} + sys ${(used.system / 1e6).toFixed(2)} s`;
}

const { values } = parseArgs({
  options: { gib: { type: 'string', default: '4' }, runs: { type: 'string', default: '3' }, child: { type: 'boolean', default: false } },
});
const gib = Number(values.gib);
const runs = Number(values.runs);
if (!Number.isInteger(gib) || gib < 1 || !Number.isInteger(runs) || runs < 1) throw new Error('--gib and --runs must be positive integers');

if (values.child) {
  const buffers = Array.from({ length: gib }, () => Buffer.allocUnsafeSlow(GIB));
  console.log(`first touch of ${gib} GiB: ${fill(buffers, 1)}; the same memory again: ${fill(buffers, 2)}`);
} else {
  for (let run = 1; run <= runs; run++) {
    const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', '--gib', String(gib)], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`run ${run} failed: ${child.stderr}`);
    process.stdout.write(`run ${run}, fresh process: ${child.stdout}`);
  }
}
