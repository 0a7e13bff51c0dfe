/**
 * The engine process's entry: it owns the onnxruntime sessions. session.run() blocks the
 * thread it runs on (docs/onnxruntime.md pitfall 7), so it never runs on the server's event
 * loop, and a native crash here ends only this process (the parent restarts it: ./runner.ts).
 */
import ort from 'onnxruntime-node';
import { OnnxRuntimeError, parseOrtMessage } from './errors.js';
import { sessionOptions } from './session-options.js';
import { tensorProblem, type TensorData, type TensorMap } from './tensor-data.js';
import type { KeptView, LoadResult, SerializedError, WorkerRequest, WorkerResponse } from './worker-protocol.js';

interface HostedSession {
  name: string;
  session: ort.InferenceSession;
  bound: Record<string, ort.Tensor>;
}

const sessions = new Map<number, HostedSession>();
/** Arrays kept for later binds by reference (LoRA weights), by key. */
const kept = new Map<string, Float32Array[]>();
let nextSessionId = 1;

function toOrtTensors(model: string, session: ort.InferenceSession, feeds: TensorMap): Record<string, ort.Tensor> {
  const tensors: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(feeds)) {
    if (!session.inputNames.includes(name)) {
      throw new OnnxRuntimeError(model, 'run', `unknown input "${name}" (inputs: ${session.inputNames.join(', ')})`);
    }
    const problem = tensorProblem(tensor);
    if (problem !== null) throw new OnnxRuntimeError(model, 'run', `input "${name}": ${problem}`);
    tensors[name] = new ort.Tensor(tensor.type, tensor.data, tensor.dims);
  }
  return tensors;
}

/** Tensors that view kept arrays, checked against the session's inputs and the arrays' bounds. */
function keptTensors(model: string, session: ort.InferenceSession, views: Record<string, KeptView>): Record<string, ort.Tensor> {
  const tensors: Record<string, ort.Tensor> = {};
  for (const [name, view] of Object.entries(views)) {
    if (!session.inputNames.includes(name)) throw new OnnxRuntimeError(model, 'run', `unknown input "${name}"`);
    const array = kept.get(view.key)?.[view.array];
    const size = view.dims.reduce((p, d) => p * d, 1);
    if (array === undefined || view.offset < 0 || view.offset + view.length > array.length || size !== view.length) {
      throw new OnnxRuntimeError(
        model,
        'run',
        `input "${name}": no kept array ${view.array} of "${view.key}" holds [${view.dims.join(', ')}] at ${view.offset}`,
      );
    }
    tensors[name] = new ort.Tensor('float32', array.subarray(view.offset, view.offset + view.length), view.dims);
  }
  return tensors;
}

function fromOrtTensor(tensor: ort.Tensor): TensorData {
  return { type: tensor.type as TensorData['type'], dims: [...tensor.dims], data: tensor.data as TensorData['data'] };
}

function hosted(id: number): HostedSession {
  const entry = sessions.get(id);
  if (entry === undefined) throw new Error(`session ${id} was released`);
  return entry;
}

function wrapOrtError(model: string, phase: 'load' | 'run', error: unknown): Error {
  if (error instanceof OnnxRuntimeError) return error;
  const parsed = parseOrtMessage(error instanceof Error ? error.message : String(error));
  return new OnnxRuntimeError(model, phase, parsed.detail, parsed.node, parsed.opType);
}

async function handle(request: WorkerRequest): Promise<LoadResult | TensorMap | null> {
  switch (request.type) {
    case 'load': {
      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(request.bytes, sessionOptions(request.model, request.settings));
      } catch (error) {
        throw wrapOrtError(request.name, 'load', error);
      }
      const id = nextSessionId++;
      sessions.set(id, { name: request.name, session, bound: {} });
      return { session: id, inputNames: [...session.inputNames], outputNames: [...session.outputNames] };
    }
    case 'bind': {
      const entry = hosted(request.session);
      Object.assign(entry.bound, toOrtTensors(entry.name, entry.session, request.feeds), keptTensors(entry.name, entry.session, request.views ?? {}));
      return null;
    }
    case 'keep':
      kept.set(request.key, request.arrays);
      return null;
    case 'forget':
      kept.delete(request.key);
      return null;
    case 'run': {
      const entry = hosted(request.session);
      const feeds = { ...entry.bound, ...toOrtTensors(entry.name, entry.session, request.feeds) };
      const missing = entry.session.inputNames.filter((n) => feeds[n] === undefined);
      if (missing.length > 0) {
        throw new OnnxRuntimeError(entry.name, 'run', `missing input${missing.length > 1 ? 's' : ''} ${missing.map((n) => `"${n}"`).join(', ')}`);
      }
      const unknownOutputs = (request.outputs ?? []).filter((n) => !entry.session.outputNames.includes(n));
      if (unknownOutputs.length > 0) {
        throw new OnnxRuntimeError(entry.name, 'run', `unknown output "${unknownOutputs[0]}" (outputs: ${entry.session.outputNames.join(', ')})`);
      }
      let results: ort.InferenceSession.OnnxValueMapType;
      try {
        results = request.outputs === undefined ? await entry.session.run(feeds) : await entry.session.run(feeds, request.outputs);
      } catch (error) {
        throw wrapOrtError(entry.name, 'run', error);
      }
      const outputs: TensorMap = {};
      for (const [name, value] of Object.entries(results)) outputs[name] = fromOrtTensor(value as ort.Tensor);
      return outputs;
    }
    case 'release': {
      const entry = sessions.get(request.session);
      sessions.delete(request.session);
      await entry?.session.release();
      return null;
    }
    case 'shutdown': {
      const all = [...sessions.values()];
      sessions.clear();
      kept.clear();
      await Promise.all(all.map((entry) => entry.session.release()));
      return null;
    }
  }
}

function serializeError(error: unknown): SerializedError {
  if (error instanceof OnnxRuntimeError) {
    return { name: error.name, message: error.message, model: error.model, phase: error.phase, detail: error.detail, node: error.node, opType: error.opType };
  }
  const e = error instanceof Error ? error : new Error(String(error));
  return { name: e.name, message: e.message };
}

const send = process.send?.bind(process);
if (send === undefined) throw new Error('inference-worker must run as a child process with an IPC channel');

process.on('message', (request: WorkerRequest) => {
  handle(request).then(
    (result) => {
      send({ id: request.id, ok: true, result } satisfies WorkerResponse);
      if (request.type === 'shutdown') process.disconnect();
    },
    (error: unknown) => send({ id: request.id, ok: false, error: serializeError(error) } satisfies WorkerResponse),
  );
});
// The parent is gone: nobody can use the sessions any more.
process.on('disconnect', () => process.exit(0));
