/**
 * Summarizes an onnxruntime profile (Chrome trace JSON, SessionSettings.profilePrefix) by operator
 * type: the kernel time of each op type within the last run, as a share of that run's wall time.
 */
import { readFileSync } from 'node:fs';

interface TraceEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

export interface OpShare {
  op: string;
  ms: number;
  share: number;
  nodes: number;
}

export function summarizeProfile(path: string): { runMs: number; ops: OpShare[] } {
  const events = JSON.parse(readFileSync(path, 'utf8')) as TraceEvent[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const last = runs[runs.length - 1];
  if (last === undefined) throw new Error(`${path}: no model_run in the profile`);
  const byOp = new Map<string, { us: number; nodes: number }>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < last.ts || e.ts > last.ts + last.dur) continue;
    const op = e.args?.op_name ?? '?';
    const entry = byOp.get(op) ?? { us: 0, nodes: 0 };
    entry.us += e.dur;
    entry.nodes += 1;
    byOp.set(op, entry);
  }
  const ops = [...byOp.entries()].map(([op, { us, nodes }]) => ({ op, ms: us / 1000, share: us / last.dur, nodes })).sort((a, b) => b.ms - a.ms);
  return { runMs: last.dur / 1000, ops };
}
