/**
 * onnxruntime's WebGPU provider on lavapipe: the device choice with a working adapter, and the
 * minimal reproductions of docs/webgpu.md's findings, run as they are (if one stops reproducing,
 * its workaround may go), next to the graph forms flux-lora builds instead.
 */
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { chooseDevices, parseDevicePlan } from '../../../src/onnx/device-plan.js';
import { EngineStoppedError } from '../../../src/onnx/errors.js';
import { GraphBuilder, type BuiltModel } from '../../../src/onnx/graph.js';
import * as op from '../../../src/onnx/ops/index.js';
import { float32Tensor } from '../../../src/onnx/tensor-data.js';
import { sessionOptions } from '../../../src/onnx/session-options.js';
import { probeWebGpu } from '../../../src/onnx/webgpu-probe.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath, worstExcess } from '../../helpers/golden.js';
import { randomFloats } from '../../helpers/random.js';
import { outputData, runOnce, useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { describeWebGpu, webGpu } from '../../helpers/webgpu.js';

const worker = useWorker();
const tmp = useTempDir('webgpu-provider-');

interface AttentionCase {
  length: number;
  heads: number;
  /** A per-head additive bias input [1, heads, length, length] (T5's form). */
  bias?: boolean;
  causal?: boolean;
}

/** Self-attention over `length` tokens of heads × 8 channels, built for `device` (op.attention) or as the contrib op itself. */
function attentionGraph(device: 'cpu' | 'webgpu', c: AttentionCase, form: 'attention' | 'MultiHeadAttention') {
  const g = new GraphBuilder(`attention-${c.length}`, { device });
  const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, 'float32', [1, c.length, 8 * c.heads])) as [
    ReturnType<typeof g.input>,
    ReturnType<typeof g.input>,
    ReturnType<typeof g.input>,
  ];
  const bias = c.bias ? g.input('bias', 'float32', [1, c.heads, c.length, c.length]) : undefined;
  const attend = form === 'attention' ? op.attention : op.multiHeadAttention;
  g.output(attend(g, q, k, v, { numHeads: c.heads, bias, causal: c.causal }), 'y');
  return g.build();
}

function feeds(c: AttentionCase) {
  const width = 8 * c.heads;
  const inputs = Object.fromEntries(['q', 'k', 'v'].map((n, i) => [n, float32Tensor([1, c.length, width], randomFloats(c.length * width, i + 1))]));
  return c.bias ? { ...inputs, bias: float32Tensor([1, c.heads, c.length, c.length], randomFloats(c.heads * c.length ** 2, 4)) } : inputs;
}

/** The largest excess over atol 1e-5 + rtol 1e-5 of a form on WebGPU against op.attention on the CPU (MultiHeadAttention). */
async function excessOnWebGpu(c: AttentionCase, form: 'attention' | 'MultiHeadAttention'): Promise<number> {
  const expected = outputData(await runOnce(worker(), attentionGraph('cpu', c, 'attention'), feeds(c)), 'y');
  const actual = outputData(await runOnce(worker(), attentionGraph('webgpu', c, form), feeds(c), { device: 'webgpu' }), 'y');
  return worstExcess(actual, expected, 1e-5, 1e-5).excess;
}

describeWebGpu('the WebGPU provider', () => {
  it('auto uses a hardware adapter but not a software one; webgpu uses either; components pinned to the CPU stay there', async () => {
    const adapter = webGpu.ok ? webGpu.adapter : undefined;
    expect(adapter?.software).toBe(adapter?.architecture === 'software' || adapter?.name.startsWith('llvmpipe'));
    const auto = await chooseDevices(parseDevicePlan('auto,t5=cpu', '--device'), probeWebGpu);
    const named = await chooseDevices(parseDevicePlan('webgpu,t5=cpu', '--device'), probeWebGpu);
    const split = { transformer: 'webgpu', vae: 'webgpu', t5: 'cpu', clip: 'webgpu', safety: 'webgpu' };
    expect(named.devices).toEqual(split);
    expect(named.lines).toEqual([
      expect.stringMatching(/^WebGPU adapter: .+ \(vendor .+buffers up to .+\); on it: transformer, vae, clip, safety; on the CPU: t5$/),
    ]);
    expect(named.adapter?.name).toBe(adapter?.name);
    if (adapter?.software) {
      expect(Object.values(auto.devices)).toEqual(['cpu', 'cpu', 'cpu', 'cpu', 'cpu']);
      expect(auto.lines).toEqual([
        expect.stringMatching(/^WebGPU adapter: .+; everything on the CPU$/),
        'It emulates a GPU on the CPU, slower than the CPU itself: auto keeps the CPU (--device webgpu uses it anyway)',
      ]);
      expect(auto.adapter).toBeUndefined();
    } else {
      expect(auto).toEqual(named);
    }
  });

  it('flux-lora eval t5 --device webgpu names the adapter on stderr and writes the golden values', async () => {
    const out = join(tmp(), 't5.safetensors');
    let stderr = '';
    const args = [
      'eval',
      't5',
      '--device',
      'webgpu',
      '--model',
      goldenPath('t5_weights.safetensors'),
      '--case',
      goldenPath('t5_cases.safetensors'),
      '--out',
      out,
    ];
    expect(
      await main(
        args,
        () => undefined,
        (t) => (stderr += t),
      ),
    ).toBe(0);
    expect(stderr).toMatch(/^WebGPU adapter: .+; on it: transformer, vae, t5, clip, safety\n$/);
    const [written, golden] = [await SafetensorsFile.open(out), await SafetensorsFile.open(goldenPath('t5_cases.safetensors'))];
    for (const name of written.names()) expectAllClose(await written.readFloat32(name), await golden.readFloat32(name), 1e-5, 1e-5, name);
  });

  it('finding 1: MultiHeadAttention is wrong from 32 keys on; the explicit attention flux-lora builds matches the CPU', async () => {
    for (const length of [31, 32, 140]) {
      expect(await excessOnWebGpu({ length, heads: 4 }, 'attention'), `explicit, ${length} keys`).toBeLessThanOrEqual(0);
      expect((await excessOnWebGpu({ length, heads: 4 }, 'MultiHeadAttention')) > 0, `MultiHeadAttention, ${length} keys`).toBe(length >= 32);
    }
    // In chunks of heads (finding 6), with T5's per-head bias and CLIP's causal mask.
    expect(op.HEADS_PER_CHUNK).toBeLessThan(10);
    expect(await excessOnWebGpu({ length: 40, heads: 10, bias: true }, 'attention')).toBeLessThanOrEqual(0);
    expect(await excessOnWebGpu({ length: 40, heads: 10, causal: true }, 'attention')).toBeLessThanOrEqual(0);
  });

  it('finding 2: a MatMul with inner dimension 0 crashes the engine (SIGSEGV); the engine restarts and serves the next load', async () => {
    const g = new GraphBuilder('inner-dimension-0', { device: 'webgpu' });
    g.output(op.matmul(g, g.input('a', 'float32', [4, 'k']), g.input('b', 'float32', ['k', 8])), 'y');
    const empty = { a: float32Tensor([4, 0], new Float32Array(0)), b: float32Tensor([0, 8], new Float32Array(0)) };
    const crash = await runOnce(worker(), g.build(), empty, { device: 'webgpu' }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(crash).toBeInstanceOf(EngineStoppedError);
    expect((crash as EngineStoppedError).reason).toBe('SIGSEGV');
    const ones = { a: float32Tensor([4, 1], new Float32Array(4).fill(1)), b: float32Tensor([1, 8], new Float32Array(8).fill(2)) };
    expect(Array.from(outputData(await runOnce(worker(), g.build(), ones, { device: 'webgpu' }), 'y'))).toEqual(new Array(32).fill(2));
  });

  it('finding 5: a bfloat16 weight is cast once at load, so every node of the session runs on WebGPU', async () => {
    const g = new GraphBuilder('bfloat16-weight', { device: 'webgpu' });
    const weight = g.initializer('w', 'bfloat16', [4, 4], new Uint16Array(16).fill(0x3f80)); // 1.0
    g.output(op.matmul(g, g.input('x', 'float32', [2, 4]), op.cast(g, weight, 'float32')), 'y');
    const model = g.build();
    // The provider has no bfloat16 Cast: with the CPU's session options the cast stays and needs the CPU.
    await expect(webGpuOnlySession(model, 'cpu')).rejects.toThrow(/fallback to CPU EP has been explicitly disabled/);
    expect(await runWebGpuOnly(model, 'webgpu', { x: new ort.Tensor('float32', new Float32Array(8).fill(1), [2, 4]) })).toEqual(new Array(8).fill(4));
  });

  it('finding 7: linears are MatMul with a folded Transpose on WebGPU (FusedMatMul has no WebGPU kernel)', async () => {
    const build = (device: 'cpu' | 'webgpu') => {
      const g = new GraphBuilder('linear', { device });
      g.output(op.matmulTransposed(g, g.input('x', 'float32', [2, 3]), g.initializer('w', 'float32', [2, 3], Float32Array.of(1, 2, 3, 4, 5, 6))), 'y');
      return g.build();
    };
    await expect(webGpuOnlySession(build('cpu'), 'webgpu')).rejects.toThrow(/fallback to CPU EP has been explicitly disabled/);
    const x = new ort.Tensor('float32', Float32Array.of(1, 0, 0, 0, 1, 1), [2, 3]);
    expect(await runWebGpuOnly(build('webgpu'), 'webgpu', { x })).toEqual([1, 4, 5, 11]);
  });
});

/** A session on the WebGPU provider alone, with flux-lora's options for `device`: creation fails if any node needs the CPU. */
function webGpuOnlySession(model: BuiltModel, device: 'cpu' | 'webgpu'): Promise<ort.InferenceSession> {
  const options = sessionOptions(model, { device });
  const extra = options.extra as { session: Record<string, string> };
  return ort.InferenceSession.create(model.bytes, {
    ...options,
    executionProviders: ['webgpu'],
    extra: { ...extra, session: { ...extra.session, disable_cpu_ep_fallback: '1' } },
  });
}

async function runWebGpuOnly(model: BuiltModel, device: 'cpu' | 'webgpu', feeds: Record<string, ort.Tensor>): Promise<number[]> {
  const session = await webGpuOnlySession(model, device);
  try {
    const { y } = await session.run(feeds);
    return Array.from(y?.data as Float32Array);
  } finally {
    await session.release();
  }
}
