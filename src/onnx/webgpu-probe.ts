/**
 * The WebGPU smoke check before first use: a short-lived child process (./webgpu-probe-child.ts)
 * finds the adapter and runs a test graph on onnxruntime's WebGPU provider. A missing driver,
 * a wrong result, a hang or a native crash of the driver all come back as a reason, never as a
 * crash of the caller.
 */
import { forkSibling } from './child-module.js';

export interface WebGpuAdapter {
  /** The driver's description, e.g. "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)" or "NVIDIA H100 80GB HBM3". */
  name: string;
  vendor: string;
  architecture: string;
  /** WebGPU limits: the largest buffer and the largest storage binding a shader may read, in bytes. */
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  /** Whether shaders may compute in float16 (`shader-f16`). */
  shaderF16: boolean;
  /** A CPU emulation (lavapipe, SwiftShader: WebGPU's "fallback adapter"), far slower than the CPU provider. */
  software: boolean;
}

export type ProbeMessage = { ok: true; adapter: WebGpuAdapter } | { ok: false; reason: string; adapter?: WebGpuAdapter };

export type WebGpuProbe = () => Promise<ProbeMessage>;

const PROBE_TIMEOUT_MS = 60_000;

export const probeWebGpu: WebGpuProbe = () =>
  new Promise((resolve) => {
    const child = forkSibling('webgpu-probe-child', 'ignore');
    let answer: ProbeMessage | null = null;
    const timer = setTimeout(() => {
      answer ??= { ok: false, reason: `the WebGPU check did not finish in ${PROBE_TIMEOUT_MS / 1000} s` };
      child.kill('SIGKILL');
    }, PROBE_TIMEOUT_MS);
    child.on('message', (message: ProbeMessage) => (answer ??= message));
    child.on('error', () => undefined); // a failed start also ends in 'exit'
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(answer ?? { ok: false, reason: `the WebGPU check crashed (${signal ?? `exit code ${code ?? '?'}`})` });
    });
  });

/** "llvmpipe: Mesa 25.0.7 (vendor mesa, software; buffers up to 4 GiB, storage bindings up to 128 MiB, shader-f16)". */
export function describeAdapter(adapter: WebGpuAdapter): string {
  const size = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(bytes % 2 ** 30 === 0 ? 0 : 1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`);
  const kind = [adapter.vendor && `vendor ${adapter.vendor}`, adapter.architecture].filter(Boolean).join(', ');
  const limits = `buffers up to ${size(adapter.maxBufferSize)}, storage bindings up to ${size(adapter.maxStorageBufferBindingSize)}`;
  return `${adapter.name} (${kind ? `${kind}; ` : ''}${limits}${adapter.shaderF16 ? ', shader-f16' : ''})`;
}
