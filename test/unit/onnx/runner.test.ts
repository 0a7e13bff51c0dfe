import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../src/onnx/graph.js';
import * as op from '../../../src/onnx/ops/index.js';
import { EngineStoppedError, InferenceWorkerError, OnnxRuntimeError, RunCancelledError } from '../../../src/onnx/errors.js';
import { InferenceWorker } from '../../../src/onnx/runner.js';
import { float32Tensor, int64Tensor } from '../../../src/onnx/tensor-data.js';
import { randomFloats } from '../../helpers/random.js';
import { useWorker } from '../../helpers/run-graph.js';

const worker = useWorker();

/** A chain of `depth` 1024×1024 matmuls: ≈2 GFLOP per layer, slow enough to observe. */
function slowModel(depth: number) {
  const g = new GraphBuilder('slow-chain');
  let h = g.input('x', 'float32', [1024, 1024]);
  const w = g.initializer('w', 'float32', [1024, 1024], randomFloats(1024 * 1024, 7, Math.sqrt(3 / 1024)));
  for (let i = 0; i < depth; i++) h = op.matmul(g, h, w);
  g.output(h, 'y');
  return g.build();
}

const slowInput = () => ({ x: float32Tensor([1024, 1024], randomFloats(1024 * 1024, 8)) });

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('InferenceWorker', () => {
  it('starts its engine with the environment of engineEnvironment() (huge-page malloc)', async () => {
    const engine = new InferenceWorker();
    try {
      await engine.load(slowModel(1));
      const environ = readFileSync(`/proc/${engine.status.pid as number}/environ`, 'utf8').split('\0');
      expect(environ.find((v) => v.startsWith('GLIBC_TUNABLES='))).toMatch(/glibc\.malloc\.hugetlb=/);
    } finally {
      await engine.close();
    }
  });

  it('keeps the main event loop responsive during a long run', async () => {
    const session = await worker().load(slowModel(80));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = performance.now();
    await session.run(slowInput());
    const elapsed = performance.now() - started;
    clearInterval(timer);
    await session.release();
    expect(elapsed).toBeGreaterThan(100);
    // A blocked loop gets 0 ticks; a free one about elapsed/10. Allow for a noisy 2-core machine.
    expect(ticks).toBeGreaterThan((elapsed / 10) * 0.3);
  });

  it('cancels queued runs before they start and releases an aborted running call at once', async () => {
    const session = await worker().load(slowModel(60));
    let started = performance.now();
    await session.run(slowInput());
    const oneRun = performance.now() - started;

    const controller = new AbortController();
    const runs = Array.from({ length: 6 }, () => session.run(slowInput(), { signal: controller.signal }));
    started = performance.now();
    controller.abort();
    const errors = await Promise.all(runs.map(rejection));
    expect(performance.now() - started).toBeLessThan(oneRun / 2 + 50);
    for (const error of errors) {
      expect(error).toBeInstanceOf(RunCancelledError);
      expect(error.message).toBe('model "slow-chain": run cancelled');
    }
    // Only the run already in the worker finishes; the five queued never start.
    const out = await session.run(slowInput());
    expect(performance.now() - started).toBeLessThan(oneRun * 3.5);
    expect(out.y?.dims).toEqual([1024, 1024]);
    await expect(session.run(slowInput(), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(RunCancelledError);
    await session.release();
  });

  it('reports run-time failures naming the model and the node', async () => {
    const g = new GraphBuilder('reshaper');
    const x = g.input('x', 'float32', ['n']);
    const target = g.input('target', 'int64', [2]);
    g.output(
      g.scope('block3', () => op.reshape(g, x, target, 'to_grid')),
      'y',
    );
    // The engine's own error line would print in red on a passing run: this failure is expected.
    const session = await worker().load(g.build(), { engineErrorLog: false });
    const error = await rejection(session.run({ x: float32Tensor([6], [1, 2, 3, 4, 5, 6]), target: int64Tensor([2], [4, 4]) }));
    expect(error).toBeInstanceOf(OnnxRuntimeError);
    const e = error as OnnxRuntimeError;
    expect([e.model, e.node, e.opType, e.phase]).toEqual(['reshaper', 'block3/to_grid', 'Reshape', 'run']);
    expect(e.message).toBe(
      'model "reshaper", node "block3/to_grid" (Reshape): run failed: The input tensor cannot be reshaped to the requested shape. Input shape:{6}, requested shape:{4,4}',
    );
    const ok = await session.run({ x: float32Tensor([6], [1, 2, 3, 4, 5, 6]), target: int64Tensor([2], [2, 3]) });
    expect(ok.y?.dims).toEqual([2, 3]);
    await session.release();
  });

  it('reports load failures naming the model', async () => {
    const g = new GraphBuilder('broken');
    const x = g.input('x', 'float32', [2]);
    g.output(g.op('NoSuchOperator', 'mystery').emitOne([x], { dtype: 'float32', shape: [2] }), 'y');
    const error = await rejection(worker().load(g.build(), { engineErrorLog: false }));
    expect(error).toBeInstanceOf(OnnxRuntimeError);
    expect((error as OnnxRuntimeError).phase).toBe('load');
    expect(error.message).toMatch(/^model "broken".*failed to load: .*NoSuchOperator/);
  });

  it('validates feeds and names the offending input', async () => {
    const g = new GraphBuilder('adder');
    const a = g.input('a', 'float32', [2]);
    const b = g.input('b', 'float32', [2]);
    g.output(op.add(g, a, b), 'sum');
    const session = await worker().load(g.build());
    const two = float32Tensor([2], [1, 2]);
    await expect(session.run({ a: two })).rejects.toThrow('model "adder": run failed: missing input "b"');
    await expect(session.run({ a: two, b: two, c: two })).rejects.toThrow('unknown input "c" (inputs: a, b)');
    await expect(session.run({ a: two, b: float32Tensor([3], [1, 2, 3]) })).rejects.toThrow(/run failed/);
    await expect(session.run({ a: two, b: { type: 'float32', dims: [2], data: new Float32Array(3) } })).rejects.toThrow(
      'input "b": dims [2] need 2 elements, data has 3',
    );
    await expect(session.run({ a: two, b: { type: 'float32', dims: [2], data: new Int32Array(2) } })).rejects.toThrow(
      'input "b": float32 data must be a Float32Array, got Int32Array',
    );
    await expect(session.run({ a: two, b: two }, { outputs: ['nope'] })).rejects.toThrow('unknown output "nope" (outputs: sum)');
    expect((await session.run({ a: two, b: two })).sum?.data).toEqual(Float32Array.of(2, 4));
    await session.release();
  });

  it('moves input buffers to the worker when asked instead of copying them', async () => {
    const g = new GraphBuilder('mover');
    g.output(op.mul(g, g.input('x', 'float32', [3]), 2), 'y');
    const session = await worker().load(g.build());
    const copied = Float32Array.of(1, 2, 3);
    const moved = Float32Array.of(1, 2, 3);
    expect((await session.run({ x: float32Tensor([3], copied) })).y?.data).toEqual(Float32Array.of(2, 4, 6));
    expect((await session.run({ x: float32Tensor([3], moved) }, { transfer: true })).y?.data).toEqual(Float32Array.of(2, 4, 6));
    expect([copied.length, moved.length]).toEqual([3, 0]);
    await session.release();
  });

  it('supplies bound inputs to every run unless a run overrides them', async () => {
    const g = new GraphBuilder('bound');
    const x = g.input('x', 'float32', [2]);
    const lora = g.input('lora', 'float32', [2]);
    g.output(op.mul(g, x, lora), 'y');
    const session = await worker().load(g.build());
    await session.bind({ lora: float32Tensor([2], [10, 100]) });
    expect((await session.run({ x: float32Tensor([2], [1, 2]) })).y?.data).toEqual(Float32Array.of(10, 200));
    expect((await session.run({ x: float32Tensor([2], [1, 2]), lora: float32Tensor([2], [1, 1]) })).y?.data).toEqual(Float32Array.of(1, 2));
    expect((await session.run({ x: float32Tensor([2], [3, 3]) })).y?.data).toEqual(Float32Array.of(30, 300));
    await session.release();
    await expect(session.run({ x: float32Tensor([2], [1, 2]) })).rejects.toThrow(/released/);
  });

  it('rejects pending work when closed and refuses new work afterwards', async () => {
    const own = new InferenceWorker();
    const session = await own.load(slowModel(30));
    const running = rejection(session.run(slowInput()));
    const queued = rejection(session.run(slowInput()));
    await own.close();
    expect(await running).toBeInstanceOf(InferenceWorkerError);
    expect(await queued).toBeInstanceOf(InferenceWorkerError);
    await expect(own.load(slowModel(1))).rejects.toThrow('inference worker closed');
  });

  it('survives a kill of its engine: the run in flight fails naming the signal, the engine restarts, old sessions ask to be loaded again', async () => {
    const own = new InferenceWorker();
    const stops: EngineStoppedError[] = [];
    own.onStopped((error) => stops.push(error));
    const session = await own.load(slowModel(200));
    const first = own.status.pid as number;
    const running = rejection(session.run(slowInput()));
    const queued = rejection(session.run(slowInput()));
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(first, 'SIGKILL');
    for (const error of [await running, await queued]) {
      expect(error).toBeInstanceOf(EngineStoppedError);
      expect(error.message).toBe('engine stopped: SIGKILL running "slow-chain"');
    }
    expect(stops.map((e) => e.reason)).toEqual(['SIGKILL']);
    expect(own.status).toMatchObject({ state: 'restarting', restarts: 1, lastStop: 'SIGKILL' });
    await expect(session.run(slowInput())).rejects.toThrow('engine stopped: SIGKILL since "slow-chain" was loaded; load it again');
    await session.release();
    const again = await own.load(slowModel(1));
    expect(own.status).toMatchObject({ state: 'running', restarts: 1 });
    expect(own.status.pid).not.toBe(first);
    expect((await again.run(slowInput())).y?.dims).toEqual([1024, 1024]);
    await own.close();
    expect(own.status.state).toBe('closed');
  });
});
