/**
 * The machine's theoretical per-second peaks, from /proc/cpuinfo's flags and an estimate of the
 * running clock (a chain of dependent integer adds retires one per cycle, so its rate is a lower
 * bound on the clock; the cpuinfo MHz of a VM is often the nominal one, below the boost clock).
 * Per core and cycle: two FMA pipes; AVX-512 on Zen 5 and Intel runs full 512-bit vectors
 * (Zen 4 splits them in two); VNNI vpdpbusd does 4 int8 multiply-adds per 32-bit lane,
 * avx512_bf16 vdpbf16ps 2 bf16 multiply-adds per lane.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';

export interface CpuPeaks {
  model: string;
  cores: number;
  nominalGHz: number;
  measuredGHz: number;
  /** GFLOP/s (fp32 FMA), GFLOP/s (bf16 dot products), GOP/s (int8 VNNI); null when the flag is absent. */
  fp32: number;
  bf16: number | null;
  int8: number | null;
  flags: string[];
}

function dependentAdds(n: number): number {
  let x = 0;
  for (let i = 0; i < n; i++) x = (x + i) | 0;
  return x;
}

function measuredClockGHz(): number {
  let best = 0;
  for (let r = 0; r < 10; r++) {
    const n = 1e8;
    const t = process.hrtime.bigint();
    dependentAdds(n);
    best = Math.max(best, n / Number(process.hrtime.bigint() - t));
  }
  return best;
}

export function cpuPeaks(): CpuPeaks {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1] ?? '';
  const flags = field('flags').split(/\s+/);
  const has = (f: string) => flags.includes(f);
  const zen4 = field('vendor_id') === 'AuthenticAMD' && Number(field('cpu family')) === 25;
  const lanes32 = has('avx512f') ? (zen4 ? 8 : 16) : has('avx2') ? 8 : 4;
  const pipes = 2;
  const cores = availableParallelism();
  const measuredGHz = measuredClockGHz();
  const perCycle = (perLane: number, lanes = lanes32) => cores * pipes * lanes * perLane * measuredGHz;
  return {
    model: field('model name'),
    cores,
    nominalGHz: Number(field('cpu MHz')) / 1000,
    measuredGHz,
    fp32: perCycle(2),
    bf16: has('avx512_bf16') ? perCycle(4) : null,
    int8: has('avx512_vnni') ? perCycle(8) : has('avx_vnni') ? perCycle(8, 8) : null,
    flags: ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_int8'].filter(has),
  };
}
