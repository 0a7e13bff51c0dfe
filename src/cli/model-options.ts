/**
 * The options `predict` and `serve` share to configure the predictor: weights, memory budget,
 * the safety pair and where local LoRA files may come from. Flags win over environment variables.
 */
import { readEnvironment, type Environment } from '../config.js';
import { CPU_ONLY, DEVICE_COMPONENTS, parseDevicePlan, type DevicePlan } from '../onnx/device-plan.js';
import type { PredictorOptions } from '../predictor/predictor.js';
import { GIB } from '../predictor/residency.js';
import { UsageError } from './usage-error.js';

export const MODEL_OPTIONS = {
  'model-dir': { type: 'string' },
  'memory-budget': { type: 'string' },
  device: { type: 'string' },
  'device-memory': { type: 'string' },
  'safety-checker': { type: 'string' },
  'safety-classifier': { type: 'string' },
  'disable-safety-checker': { type: 'boolean' },
  'lora-dir': { type: 'string' },
} as const;

/** Help lines of the shared options; the LoRA folder and the disabled checker mean different things to `predict` and `serve`. */
export const modelOptionsHelp = (text: {
  loraDir: string;
  disabled: string;
}) => `  --model-dir <dir>           FLUX.1 weights (default: $FLUX_MODEL_DIR; with neither, the built-in tiny model)
  --memory-budget <GiB>       memory the loaded models may hold (default: 75% of RAM)
  --device <choice>           where the models run: cpu, webgpu, auto (WebGPU when a GPU adapter works, else the CPU),
                              or per component, e.g. webgpu,t5=cpu (${DEVICE_COMPONENTS.join(', ')}; default: $FLUX_DEVICE or cpu)
  --device-memory <GiB>       GPU memory the models on WebGPU may hold (default: no limit)
  --safety-checker <dir>      the diffusers safety_checker/ folder (default: $FLUX_SAFETY_CHECKER, else the weights folder's)
  --safety-classifier <dir>   the NSFW classifier's folder (default: $FLUX_SAFETY_CLASSIFIER, else nsfw_image_detection/ there)
  --disable-safety-checker    run without a safety checker (${text.disabled})
  --lora-dir <dir>            ${text.loraDir}`;

export interface ModelOptionValues {
  'model-dir'?: string;
  'memory-budget'?: string;
  device?: string;
  'device-memory'?: string;
  'safety-checker'?: string;
  'safety-classifier'?: string;
  'disable-safety-checker'?: boolean;
  'lora-dir'?: string;
}

/** A --<flag> <GiB> budget in bytes (undefined when not given). */
function budgetBytes(command: string, flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const gib = Number(text);
  if (!(gib > 0)) throw new UsageError(`${command}: --${flag} must be a positive number of GiB, got "${text}"`);
  return gib * GIB;
}

/** The --device flag, else FLUX_DEVICE, else all on the CPU; a bad text is a usage error naming where it came from. */
export function devicePlan(command: string, flag: string | undefined, env: string | undefined): DevicePlan {
  const [text, source] = flag !== undefined ? [flag, '--device'] : [env, 'FLUX_DEVICE'];
  if (text === undefined) return CPU_ONLY;
  try {
    return parseDevicePlan(text, source);
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message}`);
  }
}

/**
 * Predictor settings from the shared flags and the environment. `localLoras` is where local
 * LoRA paths may point without --lora-dir ('/' for the CLI's operator, null for a server).
 */
export function modelSettings(
  command: string,
  values: ModelOptionValues,
  env: Environment,
  localLoras: string | null,
): Pick<PredictorOptions, 'modelDir' | 'cacheDir' | 'memoryBudgetBytes' | 'deviceMemoryBudgetBytes' | 'devices' | 'safety' | 'loraCache'> {
  const memoryBudgetBytes = budgetBytes(command, 'memory-budget', values['memory-budget']);
  const deviceMemoryBudgetBytes = budgetBytes(command, 'device-memory', values['device-memory']);
  const settings = readEnvironment(env);
  const checker = values['safety-checker'] ?? settings.safetyChecker;
  const classifier = values['safety-classifier'] ?? settings.safetyClassifier;
  if ((checker === undefined) !== (classifier === undefined)) {
    throw new UsageError(
      `${command}: the safety checker needs both --safety-checker and --safety-classifier (or FLUX_SAFETY_CHECKER and FLUX_SAFETY_CLASSIFIER)`,
    );
  }
  if (values['disable-safety-checker'] === true && checker !== undefined) {
    throw new UsageError(`${command}: --disable-safety-checker contradicts the safety checker paths given`);
  }
  const safety =
    values['disable-safety-checker'] === true ? 'disabled' : checker === undefined || classifier === undefined ? undefined : { checker, classifier };
  return {
    modelDir: values['model-dir'] ?? settings.modelDir,
    cacheDir: settings.cacheDir,
    memoryBudgetBytes,
    deviceMemoryBudgetBytes,
    devices: devicePlan(command, values.device, settings.device),
    safety,
    loraCache: { localRoot: values['lora-dir'] ?? settings.loraDir ?? localLoras, tokens: settings.loraTokens },
  };
}
