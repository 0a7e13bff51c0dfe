/** Worker-thread entry of the quantization pool (./quantize-pool.ts): quantizes one linear per message. */
import { parentPort } from 'node:worker_threads';
import { quantizeBlockwise, type QuantizeOptions } from './quantize.js';
import type { SafetensorsDType } from './dtypes.js';
import { bytesToFloat32 } from './safetensors.js';

/** A weight as stored: raw little-endian bytes of `dtype`; `file` and `name` name it in conversion errors. */
export interface StoredWeight {
  bytes: Uint8Array;
  dtype: SafetensorsDType;
  file: string;
  name: string;
}

export interface QuantizeJob {
  id: number;
  weight: StoredWeight;
  n: number;
  k: number;
  options: QuantizeOptions;
}

const port = parentPort;
if (port === null) throw new Error('quantize-worker must run in a worker thread');
port.on('message', (job: QuantizeJob) => {
  try {
    const { bytes, dtype, file, name } = job.weight;
    const q = quantizeBlockwise(bytesToFloat32(bytes, dtype, file, name), job.n, job.k, job.options);
    port.postMessage({ id: job.id, result: q }, [q.data.buffer, q.scales.buffer, q.zeroPoints.buffer] as ArrayBuffer[]);
  } catch (error) {
    port.postMessage({ id: job.id, error: (error as Error).message });
  }
});
