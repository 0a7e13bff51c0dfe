/** Worker-thread entry of the quantization pool (./quantize-pool.ts): quantizes one linear per message. */
import { parentPort } from 'node:worker_threads';
import type { QuantizeOptions } from './quantize.js';
import { quantizeStored, type StoredWeight } from './quantize-stored.js';

export interface QuantizeJob {
  id: number;
  weight: StoredWeight;
  n: number;
  k: number;
  options: QuantizeOptions;
  /** A buffer of an earlier result, written and sent back, for this one to lie in (quantizeStored). */
  spare?: ArrayBuffer;
}

const port = parentPort;
if (port === null) throw new Error('quantize-worker must run in a worker thread');
port.on('message', (job: QuantizeJob) => {
  try {
    const q = quantizeStored(job.weight, job.n, job.k, job.options, job.spare);
    port.postMessage({ id: job.id, result: q }, [...new Set([q.data.buffer, q.scales.buffer, q.zeroPoints.buffer] as ArrayBuffer[])]);
  } catch (error) {
    port.postMessage({ id: job.id, error: (error as Error).message });
  }
});
