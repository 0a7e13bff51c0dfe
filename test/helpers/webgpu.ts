/**
 * The WebGPU adapter for the tests that need one: lavapipe in CI (.ci/run installs Mesa 25).
 * In CI (CI=true) a missing adapter fails those tests with the reason; elsewhere they are skipped.
 */
import { describe, expect, it } from 'vitest';
import { probeWebGpu, type ProbeMessage } from '../../src/onnx/webgpu-probe.js';

export const webGpu: ProbeMessage = await probeWebGpu();

/** `describe` for tests that run on the WebGPU provider. */
export function describeWebGpu(name: string, body: () => void): void {
  const skip = !webGpu.ok && process.env.CI !== 'true';
  describe.skipIf(skip)(skip && !webGpu.ok ? `${name} (skipped: ${webGpu.reason})` : name, () => {
    it('has a working WebGPU adapter', () => expect(webGpu.ok ? 'ok' : webGpu.reason).toBe('ok'));
    body();
  });
}
