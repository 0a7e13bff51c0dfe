import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** A child process that runs a Reshape bound to fail, with or without the engine's error log; its stderr. */
async function stderrOfFailingRun(engineErrorLog: boolean): Promise<string> {
  const script = `
    import { GraphBuilder } from './src/onnx/graph.ts';
    import * as op from './src/onnx/ops/index.ts';
    import { InferenceWorker } from './src/onnx/runner.ts';
    import { float32Tensor, int64Tensor } from './src/onnx/tensor-data.ts';
    const g = new GraphBuilder('reshaper');
    const x = g.input('x', 'float32', ['n']);
    const target = g.input('target', 'int64', [2]);
    g.output(op.reshape(g, x, target, 'to_grid'), 'y');
    const worker = new InferenceWorker();
    const session = await worker.load(g.build(), { engineErrorLog: ${engineErrorLog} });
    await session.run({ x: float32Tensor([6], [1, 2, 3, 4, 5, 6]), target: int64Tensor([2], [4, 4]) }).catch((e) => console.log(e.name));
    await worker.close();
  `;
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT });
  expect(stdout).toBe('OnnxRuntimeError\n');
  return stderr;
}

describe("onnxruntime's own error log", () => {
  it('prints by default and stays out of the output where the caller expects the failure', async () => {
    expect(await stderrOfFailingRun(true)).toContain('Non-zero status code returned while running Reshape node');
    expect(await stderrOfFailingRun(false)).not.toContain('onnxruntime');
  });
});
