/** A process's memory from /proc/<pid>/status: resident now (all, anonymous, file-backed) and its peak (VmHWM). */
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
