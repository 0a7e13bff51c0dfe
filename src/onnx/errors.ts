/** Errors from loading or running an ONNX model, naming the model and, where ORT reports one, the node. */

export type OnnxPhase = 'load' | 'run';

export class OnnxRuntimeError extends Error {
  constructor(
    readonly model: string,
    readonly phase: OnnxPhase,
    readonly detail: string,
    readonly node?: string,
    readonly opType?: string,
  ) {
    const where = node === undefined ? '' : `, node "${node}"${opType === undefined ? '' : ` (${opType})`}`;
    super(`model "${model}"${where}: ${phase === 'load' ? 'failed to load' : 'run failed'}: ${detail}`);
    this.name = 'OnnxRuntimeError';
  }
}

export class RunCancelledError extends Error {
  constructor(readonly model: string) {
    super(`model "${model}": run cancelled`);
    this.name = 'RunCancelledError';
  }
}

export class InferenceWorkerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InferenceWorkerError';
  }
}

/**
 * Extracts the failing node from onnxruntime's messages, which look like
 * "Non-zero status code returned while running Reshape node. Name:'blk/Reshape' Status Message: ..."
 * or "... Node (blk/Reshape) Op (Reshape) ...".
 */
export function parseOrtMessage(message: string): { node?: string; opType?: string; detail: string } {
  const running = /running (\S+) node\. Name:'([^']*)' Status Message: ([\s\S]*)$/.exec(message);
  if (running) return { opType: running[1], node: running[2], detail: (running[3] ?? '').trim() };
  const loading = /Node \(([^)]*)\) Op \(([^)]*)\)\s*([\s\S]*)$/.exec(message);
  if (loading) return { node: loading[1], opType: loading[2], detail: (loading[3] ?? '').replace(/^[\s:]+/, '').trim() || message };
  return { detail: message };
}
