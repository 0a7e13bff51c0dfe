/**
 * The WebGPU smoke check's process (./webgpu-probe.ts): asks Dawn for the adapter (name, vendor,
 * limits), then runs a small MatMul → Softmax graph on onnxruntime's WebGPU provider alone and
 * compares it with the same math in JavaScript. A driver that crashes ends only this process.
 */
import ort from 'onnxruntime-node';
import { create } from 'webgpu';
import { GraphBuilder } from './graph.js';
import * as op from './ops/index.js';
import type { ProbeMessage, WebGpuAdapter } from './webgpu-probe.js';

const send = process.send?.bind(process);
if (send === undefined) throw new Error('webgpu-probe-child must run as a child process with an IPC channel');

/** The adapter Dawn picks for compute, as onnxruntime's provider does (high performance), or why there is none. */
async function adapterInfo(): Promise<WebGpuAdapter | string> {
  const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' });
  if (adapter === null) return 'no WebGPU adapter (a Vulkan driver, libvulkan.so.1 and a Vulkan 1.1 device are needed on Linux)';
  const { vendor, architecture, device, description, isFallbackAdapter } = adapter.info;
  return {
    name: description || device || architecture || 'unnamed adapter',
    vendor,
    architecture,
    maxBufferSize: adapter.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    shaderF16: adapter.features.has('shader-f16'),
    software: isFallbackAdapter || architecture === 'software',
  };
}

const ROWS = 4;
const COLUMNS = 8;

/** softmax(x·w) with x [ROWS, COLUMNS], w [COLUMNS, COLUMNS], computed on the WebGPU provider only. */
async function smokeRun(x: Float32Array, w: Float32Array): Promise<Float32Array> {
  const g = new GraphBuilder('webgpu-smoke', { device: 'webgpu' });
  const input = g.input('x', 'float32', [ROWS, COLUMNS]);
  g.output(op.softmax(g, op.matmul(g, input, g.initializer('w', 'float32', [COLUMNS, COLUMNS], w)), -1), 'y');
  const session = await ort.InferenceSession.create(g.build().bytes, {
    executionProviders: ['webgpu'],
    logSeverityLevel: 3,
    // Fail instead of quietly running a node on the CPU.
    extra: { session: { disable_cpu_ep_fallback: '1' } },
  });
  try {
    const result = await session.run({ x: new ort.Tensor('float32', x, [ROWS, COLUMNS]) });
    return (result.y as ort.Tensor).data as Float32Array;
  } finally {
    await session.release();
  }
}

function expected(x: Float32Array, w: Float32Array): Float32Array {
  const y = new Float32Array(ROWS * COLUMNS);
  for (let r = 0; r < ROWS; r++) {
    const row = Array.from({ length: COLUMNS }, (_, c) => {
      let sum = 0;
      for (let k = 0; k < COLUMNS; k++) sum += (x[r * COLUMNS + k] as number) * (w[k * COLUMNS + c] as number);
      return sum;
    });
    const max = Math.max(...row);
    const total = row.reduce((s, v) => s + Math.exp(v - max), 0);
    row.forEach((v, c) => (y[r * COLUMNS + c] = Math.exp(v - max) / total));
  }
  return y;
}

async function probe(): Promise<ProbeMessage> {
  const adapter = await adapterInfo();
  if (typeof adapter === 'string') return { ok: false, reason: adapter };
  const x = Float32Array.from({ length: ROWS * COLUMNS }, (_, i) => Math.sin(i));
  const w = Float32Array.from({ length: COLUMNS * COLUMNS }, (_, i) => Math.cos(i * 0.7));
  const y = await smokeRun(x, w);
  const reference = expected(x, w);
  const error = Math.max(...reference.map((v, i) => Math.abs(v - (y[i] as number))));
  if (!(error <= 1e-5)) return { ok: false, reason: `the WebGPU provider computed a test graph wrongly (max error ${error}) on ${adapter.name}`, adapter };
  return { ok: true, adapter };
}

probe().then(
  (message) => send(message, () => process.exit(0)),
  (error: unknown) => send({ ok: false, reason: (error as Error).message ?? String(error) } satisfies ProbeMessage, () => process.exit(0)),
);
