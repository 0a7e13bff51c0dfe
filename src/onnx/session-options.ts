/**
 * onnxruntime session options, chosen from the measurements in docs/onnxruntime.md:
 * - prepacking stays on (MatMul/MatMulNBits are 1.5–4× slower without it, §3);
 * - ConstantFolding is disabled when the graph casts bf16/f16 initializers, which it would
 *   otherwise materialize as float32 copies, doubling resident weights (§4, pitfall 2) — on the CPU;
 * - on WebGPU the provider comes first and the CPU provider takes the ops it has no kernel for;
 * - intra-op threads default to the machine's cores; one inter-op thread, sequential execution;
 * - onnxruntime's graph optimizers run at level 'all' unless a model built already fused asks for fewer
 *   (the FLUX transformer on the CPU: they change nothing there but session-creation time, docs/onnxruntime.md §10.12).
 */
import { availableParallelism } from 'node:os';
import type { InferenceSession } from 'onnxruntime-node';
import type { Device } from './device.js';

export interface SessionSettings {
  /** The execution provider (default cpu). WebGPU sessions keep the CPU provider for the ops WebGPU has no kernel for. */
  device?: Device;
  /** Intra-op threads; defaults to the number of cores. */
  threads?: number;
  /**
   * onnxruntime's graph optimization level (default 'all'). 'disabled' for graphs built with the fused ops
   * onnxruntime would otherwise fuse, where its optimizers only cost session-creation time.
   */
  graphOptimization?: InferenceSession.SessionOptions['graphOptimizationLevel'];
  /** Keep weight prepacking on (default). Off keeps weights mmapped but is much slower. */
  prepack?: boolean;
  /** ORT's CPU memory arena (default on). Off suits one-shot graphs with large transient activations. */
  memoryArena?: boolean;
  /**
   * Whether onnxruntime prints its own error lines on stderr (default on). Off for sessions whose
   * failures the caller expects: the error still comes back as an OnnxRuntimeError.
   */
  engineErrorLog?: boolean;
  /**
   * onnxruntime's own profile (per-node kernel times, Chrome trace JSON): written to
   * `<profilePrefix>_<date>.json` when the session is released. For benchmarks (bench/flux-step.ts --profile).
   */
  profilePrefix?: string;
}

/** onnxruntime's log severities: 3 = errors and worse, 4 = fatal only. */
const LOG_ERRORS = 3;
const LOG_FATAL_ONLY = 4;

export interface ModelLoadInfo {
  externalDataFolder: string | null;
  castsLowPrecisionInitializers: boolean;
}

export function sessionOptions(model: ModelLoadInfo, settings: SessionSettings = {}): InferenceSession.SessionOptions {
  const threads = settings.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`threads must be a positive integer, got ${threads}`);
  }
  const session: Record<string, string> = { disable_prepacking: settings.prepack === false ? '1' : '0' };
  if (model.externalDataFolder !== null) {
    session.model_external_initializers_file_folder_path = model.externalDataFolder;
  }
  const extra: Record<string, unknown> = { session };
  // On WebGPU, casts stay folded: the provider has no bfloat16 Cast, so an unfolded one would run on the CPU and
  // upload its float32 weights every run; folded, they go to the device once (docs/webgpu.md, finding 5).
  if (model.castsLowPrecisionInitializers && settings.device !== 'webgpu') {
    extra.optimization = { disable_specified_optimizers: 'ConstantFolding' };
  }
  return {
    executionProviders: settings.device === 'webgpu' ? ['webgpu', 'cpu'] : ['cpu'],
    graphOptimizationLevel: settings.graphOptimization ?? 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableCpuMemArena: settings.memoryArena ?? true,
    ...(settings.profilePrefix === undefined ? {} : { enableProfiling: true, profileFilePrefix: settings.profilePrefix }),
    logSeverityLevel: settings.engineErrorLog === false ? LOG_FATAL_ONLY : LOG_ERRORS,
    extra,
  };
}
