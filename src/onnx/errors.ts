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
  /** `subject` says what was cancelled, e.g. `model "t5": run` or `denoising`. */
  constructor(subject: string) {
    super(`${subject} cancelled`);
    this.name = 'RunCancelledError';
  }
}

/**
 * The engine process stopped under a request: `reason` is its signal or exit code (e.g.
 * "SIGKILL"), `where` what it was doing (e.g. `running "flux"`, `during step 7/28`).
 */
export class EngineStoppedError extends Error {
  constructor(
    readonly reason: string,
    readonly where: string,
  ) {
    super(`engine stopped: ${reason} ${where}`);
    this.name = 'EngineStoppedError';
  }
}

export class InferenceWorkerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InferenceWorkerError';
  }
}

/**
 * Drops the C++ source location, function signature and failed-check expression ORT prefixes
 * to kernel messages ("/onnxruntime_src/…/reshape_helper.h:91 onnxruntime::…(…) a == b was false. "),
 * keeping the sentence meant for people.
 */
function withoutSourceLocation(detail: string): string {
  const trimmed = detail.trim();
  const located = /^\S+\.(?:h|cc|cpp):\d+ \S+\(.*?\)(?: const)? ([\s\S]*)$/.exec(trimmed);
  if (located === null) return trimmed;
  const rest = located[1] ?? '';
  return rest.replace(/^.*? was false\. /, '') || trimmed;
}

/**
 * Extracts the failing node from onnxruntime's messages, which look like
 * "Non-zero status code returned while running Reshape node. Name:'blk/Reshape' Status Message: ..."
 * or "... Node (blk/Reshape) Op (Reshape) ...".
 */
export function parseOrtMessage(message: string): { node?: string; opType?: string; detail: string } {
  const running = /running (\S+) node\. Name:'([^']*)' Status Message: ([\s\S]*)$/.exec(message);
  if (running) return { opType: running[1], node: running[2], detail: withoutSourceLocation(running[3] ?? '') };
  const loading = /Node \(([^)]*)\) Op \(([^)]*)\)\s*([\s\S]*)$/.exec(message);
  if (loading) return { node: loading[1], opType: loading[2], detail: (loading[3] ?? '').replace(/^[\s:]+/, '').trim() || message };
  return { detail: message };
}
