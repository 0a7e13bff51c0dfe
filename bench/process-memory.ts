/** A process's memory from /proc/<pid>/status (resident now: all, anonymous, file-backed; and its peak, VmHWM) and its CPU time. */
import { readFileSync } from 'node:fs';

export const GIB = 2 ** 30;

export interface ProcessMemory {
  rss: number;
  anon: number;
  file: number;
  peak: number;
}

/** `pid`: the engine process (InferenceWorker.status.pid) or 'self'. */
export function processMemory(pid: number | 'self'): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), peak: kb('VmHWM') };
}

/** A process's CPU seconds so far (user and system, all its threads) and its minor page faults, from /proc/<pid>/stat. */
export function processCounters(pid: number | 'self'): { userS: number; sysS: number; minorFaults: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // minflt, utime and stime are fields 10, 14 and 15 of stat (8, 12 and 13 after the command name); times in clock ticks (100 per second).
  return { userS: Number(fields[11]) / 100, sysS: Number(fields[12]) / 100, minorFaults: Number(fields[7]) };
}

/** CPU seconds a process has used so far, all its threads (user + system). */
export function processCpuSeconds(pid: number | 'self'): number {
  const { userS, sysS } = processCounters(pid);
  return userS + sysS;
}
