/**
 * The predictor: one request object (the 21 inputs of docs/inputs.md) → output image files.
 * Validates every input first (nothing is loaded or written for a bad request), then runs
 * text encoding → denoising per output → decoding → encoding, with the components loaded
 * through the residency pool. Output i is the image that seed+i gives alone (docs/decisions.md).
 * Predictions run one at a time, in arrival order.
 */
import { randomBytes } from 'node:crypto';
import { defaultCacheDir } from '../config.js';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { builtinLoraFolder, ensureBuiltinModel } from '../builtin/tiny-model.js';
import { DEFAULT_MAX_PIXELS } from '../images/decode.js';
import { encodeImage, outputName } from '../images/encode.js';
import { DEFAULT_IMAGE_SOURCE, type ImageSourceOptions } from '../images/source.js';
import type { RgbImage } from '../images/decode.js';
import { tensorToImage } from '../images/tensors.js';
import { displayPath } from '../util/display-path.js';
import { SafetyChecker, type SafetyPaths } from '../pipeline/safety-checker.js';
import { FluxTransformer, type FluxPrecision } from '../models/flux/transformer.js';
import { Vae } from '../models/vae/autoencoder.js';
import { openVaeCheckpoint } from '../models/vae/checkpoint.js';
import { CLIP_KIND } from '../models/text/clip-text.js';
import { CLIP_LENGTH } from '../models/text/clip-tokenizer.js';
import { openFluxCheckpoint } from '../models/flux/checkpoint.js';
import { openTextEncoderCheckpoint } from '../models/text/checkpoint.js';
import { LoraCache } from '../lora/cache.js';
import type { LoraCacheOptions } from '../lora/cache-policy.js';
import type { VaeConfig } from '../models/vae/config.js';
import { EngineStoppedError, RunCancelledError } from '../onnx/errors.js';
import { InferenceWorker, type EngineStatus } from '../onnx/runner.js';
import { outputSeed, runFluxPipeline, seededNoise, type TextConditioning } from '../pipeline/flux-pipeline.js';
import { randn } from '../pipeline/noise.js';
import { TextConditioner } from '../models/text/conditioner.js';
import type { T5Precision } from '../models/text/t5-encoder.js';
import { ModelAssetsError, resolveModelAssets, type ModelAssets, type PipelineAssets, type Variant } from './assets.js';
import { prepareImageInputs, type PreparedImage } from './image-inputs.js';
import { InputValidationError, resolveInput, type InputProblem, type ResolvedInput } from './inputs.js';
import { LoraPlanner, NO_LORAS, type LoraFetcher, type LoraPlan, type PreparedLora } from './loras.js';
import { defaultMemoryBudget, estimateResidentBytes, ResidencyPool, type ResidentForm } from './residency.js';
import type { Device } from '../onnx/device.js';
import { chooseDevices, CPU_ONLY, type DeviceChoice, type DevicePlan } from '../onnx/device-plan.js';
import { probeWebGpu, type WebGpuProbe } from '../onnx/webgpu-probe.js';

/** Every image of the prediction was flagged by the safety checker (the reference's message). */
export class AllImagesUnsafeError extends Error {
  constructor() {
    super('All generated images contained NSFW content. Try running it again with a different prompt.');
    this.name = 'AllImagesUnsafeError';
  }
}

export interface PredictorOptions {
  /** FLUX.1 weights (see ./assets.ts); absent: the built-in tiny model. */
  modelDir?: string;
  /** Quantized weights and the built-in model (default $FLUX_LORA_CACHE_DIR or ~/.cache/flux-lora). */
  cacheDir?: string;
  /** Memory the loaded components may hold (default 75% of RAM). */
  memoryBudgetBytes?: number;
  /** Device memory the components on WebGPU may hold instead (default: no limit; WebGPU does not tell a GPU's memory size). */
  deviceMemoryBudgetBytes?: number;
  /** How image inputs are fetched; local paths only where the caller allows them (the CLI). */
  imageSource?: ImageSourceOptions & { maxPixels?: number };
  /** Setup messages (loading and releasing models go to the prediction's log). */
  log?: (line: string) => void;
  /**
   * The safety pair (default: the one in the model folder; the built-in model ships a tiny one),
   * or 'disabled' to run the whole server without it (requests that want it then get a clear error).
   */
  safety?: SafetyPaths | 'disabled';
  /** Settings of the LoRA download cache (default folder: cacheDir/loras). */
  loraCache?: Partial<LoraCacheOptions>;
  /** Resolves LoRA strings instead of the default LoraCache. */
  loraFetcher?: LoraFetcher;
  /** Which execution provider each component runs on (default: all on the CPU; see src/onnx/device-plan.ts). */
  devices?: DevicePlan;
  /** The WebGPU smoke check (default: the child-process check of src/onnx/webgpu-probe.ts). */
  webGpuProbe?: WebGpuProbe;
}

export interface Progress {
  /** 0-based output index and the number of outputs. */
  output: number;
  outputs: number;
  step: number;
  total: number;
  elapsedMs: number;
}

export interface PredictOptions {
  /** Where out-<i>.<ext> are written (created if needed). */
  outputDir: string;
  signal?: AbortSignal;
  /** The prediction's log lines (`Using seed: N`, …). */
  log?: (line: string) => void;
  onProgress?(progress: Progress): void;
}

export interface PredictionResult {
  /** Absolute paths of the written files, in output order. */
  files: string[];
  seed: number;
  /** Seconds per stage, and in total. */
  metrics: {
    predict_time: number;
    lora_time: number;
    load_time: number;
    text_time: number;
    denoise_time: number;
    decode_time: number;
    safety_time: number;
    encode_time: number;
  };
}

/** A model component as the residency pool of its device holds it: key, log label and memory estimate. */
interface Component {
  key: string;
  label: string;
  bytes: number;
  device: Device;
}

/** What one prediction's components hold, against the budget of the memory each is on. */
export interface MemoryPlan {
  components: { label: string; bytes: number; device: Device }[];
  budgets: Record<Device, number>;
  /** Whether every component fits at once, so that consecutive predictions load nothing. */
  fits: boolean;
}

const T5_LENGTH: Record<Variant, number> = { dev: 512, schnell: 256 };
/** LoRA files whose matrices stay in the inference worker for switching by reference. */
const KEPT_LORAS = 4;
/** go_fast multiplies every LoRA strength by 1.5, as the schema text says (docs/decisions.md). */
const GO_FAST_LORA_MULTIPLIER = 1.5;

type Log = (line: string) => void;

/** What a server (or the workers behind it) can serve: the FLUX.1 variants its weights hold, and whether its safety checker is off. */
export interface Servable {
  variants: readonly Variant[] | readonly string[];
  safetyDisabled: boolean;
}

/**
 * The request's inputs, resolved, or an InputValidationError naming every bad one, including
 * what `servable` cannot serve (a model it lacks, images it cannot check). Loads nothing.
 */
export function validateServable(request: unknown, servable: Servable): ResolvedInput {
  const input = resolveInput(request);
  const problems: InputProblem[] = [];
  if (!input.disableSafetyChecker && servable.safetyDisabled) {
    problems.push({
      input: 'disable_safety_checker',
      message: 'the safety checker is disabled on this server, so images cannot be checked; set disable_safety_checker=true to generate without it',
    });
  }
  if (!(servable.variants as readonly string[]).includes(input.model)) {
    problems.push({ input: 'model', message: `FLUX.1-${input.model} is not configured here (available: ${servable.variants.join(', ')})` });
  }
  if (problems.length > 0) throw new InputValidationError(problems);
  return input;
}

export class Predictor {
  private readonly worker = new InferenceWorker();
  /** Components on the CPU count against RAM, components on WebGPU against the device's memory. */
  private readonly pools: Record<Device, ResidencyPool>;
  private readonly conditioners = new Map<string, TextConditioner>();
  /** Checkpoint headers and memory estimates, read once per file. */
  private readonly headers = new Map<string, Promise<unknown>>();
  private readonly loras: LoraPlanner;
  /** The LoRA files and strengths bound to each loaded transformer. */
  private readonly boundLoras = new WeakMap<FluxTransformer, { key: string; scales: string }>();
  /** LoRA files whose matrices the worker keeps, oldest first. */
  private readonly keptLoras = new Map<string, Promise<void>>();
  private queue: Promise<unknown> = Promise.resolve();

  private checker: Promise<SafetyChecker> | null = null;

  private constructor(
    readonly assets: ModelAssets,
    /** The safety pair, or 'disabled' when the operator turned the checker off for the whole server. */
    readonly safety: SafetyPaths | 'disabled',
    private readonly options: PredictorOptions,
    private readonly cacheDir: string,
    /** Where each component runs, settled at setup. */
    readonly devices: DeviceChoice,
  ) {
    this.pools = {
      cpu: new ResidencyPool(options.memoryBudgetBytes ?? defaultMemoryBudget()),
      webgpu: new ResidencyPool(options.deviceMemoryBudgetBytes ?? Infinity, 'device memory'),
    };
    const log = (line: string) => options.log?.(line);
    const builtinRoot = options.modelDir === undefined ? builtinLoraFolder(assets.root) : null;
    this.loras = new LoraPlanner(options.loraFetcher ?? new LoraCache({ dir: join(cacheDir, 'loras'), log, builtinRoot, ...options.loraCache }));
    this.worker.onStopped((error) => {
      log(`Inference ${error.message}; it restarts, and models load again when next needed`);
      void this.forgetEngineState();
    });
  }

  /** After the engine stopped, nothing loaded in it exists any more: forget it all (each release is then a no-op). */
  private async forgetEngineState(): Promise<void> {
    this.keptLoras.clear();
    this.conditioners.clear();
    this.checker = null;
    await this.releaseAll();
  }

  private async releaseAll(): Promise<void> {
    await this.pools.cpu.releaseAll();
    await this.pools.webgpu.releaseAll();
  }

  /** The engine's state (health checks). */
  get engine(): EngineStatus {
    return this.worker.status;
  }

  /**
   * Resolves the model files (writing the built-in model on first use); components load on
   * first use. Without a safety pair (given, or found in the model folder) it refuses to start
   * unless the operator disabled the checker for the whole server.
   */
  static async create(options: PredictorOptions = {}): Promise<Predictor> {
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    const root = options.modelDir ?? (await ensureBuiltinModel(cacheDir));
    const assets = resolveModelAssets(root);
    const safety = options.safety ?? assets.safety;
    if (safety === undefined) {
      throw new ModelAssetsError(
        assets.root,
        'no safety checker found: put safety_checker/ (with feature_extractor/) and nsfw_image_detection/ in the model folder, configure their paths, or disable the checker for the whole server',
      );
    }
    options.log?.(
      safety === 'disabled'
        ? 'Safety checker: disabled for this server by its operator'
        : `Safety checker: ${displayPath(safety.checker)} + ${displayPath(safety.classifier)}`,
    );
    // Before the engine loads anything: a driver that crashes takes down only the check's own process.
    const devices = await chooseDevices(options.devices ?? CPU_ONLY, options.webGpuProbe ?? probeWebGpu);
    for (const line of devices.lines) options.log?.(line);
    return new Predictor(assets, safety, options, cacheDir, devices);
  }

  /** The models this predictor serves. */
  get variants(): Variant[] {
    return (Object.keys(this.assets.pipelines) as Variant[]).sort();
  }

  /**
   * Validates the request (throwing InputValidationError naming every bad input), then
   * queues the prediction behind any running one.
   */
  async predict(request: unknown, options: PredictOptions): Promise<PredictionResult> {
    return this.enqueue(this.validate(request), options);
  }

  /** Queues a prediction of inputs that `validate` returned, behind any running one. */
  enqueue(input: ResolvedInput, options: PredictOptions): Promise<PredictionResult> {
    const run = this.queue.then(() => this.run(input, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The request's inputs, resolved, or an InputValidationError naming every bad one (including
   * what this server cannot serve: a model it lacks, images it cannot check). Loads nothing.
   */
  validate(request: unknown): ResolvedInput {
    return validateServable(request, { variants: this.variants, safetyDisabled: this.safety === 'disabled' });
  }

  /** A value derived from a file once (headers, configs, estimates), keyed by what and which file. */
  private once<T>(key: string, read: () => Promise<T>): Promise<T> {
    let value = this.headers.get(key) as Promise<T> | undefined;
    if (value === undefined) {
      value = read();
      this.headers.set(key, value);
      value.catch(() => this.headers.delete(key));
    }
    return value;
  }

  private estimate(path: string, form: ResidentForm, device: Device): Promise<number> {
    return this.once(`estimate:${form}:${device}:${path}`, () => estimateResidentBytes(path, form, device));
  }

  /**
   * T5's form: exact, or under go_fast its 8-bit weights, left mapped from the cache file on the CPU
   * (float32 activations: more accurate than int8 and no anonymous copy, so T5 and the transformer
   * both stay loaded on a 24 GB machine; docs/onnxruntime.md §10.8) and prepacked on WebGPU.
   */
  private t5Precision(goFast: boolean): T5Precision {
    if (!goFast) return 'exact';
    return this.devices.devices.t5 === 'cpu' ? 'int8-mapped' : 'int8';
  }

  /** The components a prediction of `pipeline` loads, as the residency pools hold them. */
  private async components(pipeline: PipelineAssets, goFast: boolean): Promise<Record<'text' | 'transformer' | 'vae', Component>> {
    const { t5, clip, transformer, vae } = this.devices.devices;
    const t5Precision = this.t5Precision(goFast);
    const precision: FluxPrecision = goFast ? 'int8' : 'exact';
    const t5Label = { exact: 'T5', int8: 'T5 8-bit', 'int8-mapped': 'T5 8-bit mapped', int4: 'T5 4-bit' }[t5Precision];
    return {
      // The encoders are one entry, in the pool of T5, the larger.
      text: {
        key: `text:${pipeline.t5}:${pipeline.clip}:${t5Precision}`,
        label: `text encoders (${t5Label} + CLIP)`,
        bytes: (await this.estimate(pipeline.t5, t5Precision, t5)) + (await this.estimate(pipeline.clip, 'exact', clip)),
        device: t5,
      },
      transformer: {
        key: `transformer:${pipeline.transformer}:${precision}`,
        label: `FLUX.1-${pipeline.variant} transformer (${precision === 'exact' ? 'exact' : `${precision} go_fast`})`,
        bytes: await this.estimate(pipeline.transformer, precision, transformer),
        device: transformer,
      },
      vae: { key: `vae:${pipeline.vae}`, label: 'VAE', bytes: await this.estimate(pipeline.vae, 'exact', vae), device: vae },
    };
  }

  /** What a prediction of `model` holds in memory, from checkpoint headers (loads nothing). */
  async memoryPlan(model: Variant, goFast: boolean): Promise<MemoryPlan> {
    const pipeline = this.assets.pipelines[model];
    if (pipeline === undefined) throw new ModelAssetsError(this.assets.root, `FLUX.1-${model} is not configured here`);
    const components = Object.values(await this.components(pipeline, goFast));
    const budgets = { cpu: this.pools.cpu.budgetBytes, webgpu: this.pools.webgpu.budgetBytes };
    const held = (device: Device) => components.filter((c) => c.device === device).reduce((sum, c) => sum + c.bytes, 0);
    return {
      components: components.map(({ label, bytes, device }) => ({ label, bytes, device })),
      budgets,
      fits: held('cpu') <= budgets.cpu && held('webgpu') <= budgets.webgpu,
    };
  }

  /** The LoRA states for this request, planned from checkpoint headers (no model is loaded for it). */
  private async planLoras(pipeline: PipelineAssets, prepared: PreparedLora[], log: Log): Promise<LoraPlan> {
    if (prepared.length === 0) return NO_LORAS;
    const flux = await this.once(`flux:${pipeline.transformer}`, async () => (await openFluxCheckpoint(pipeline.transformer)).config);
    const clip = await this.once(`clip:${pipeline.clip}`, async () => (await openTextEncoderCheckpoint(pipeline.clip, CLIP_KIND)).config);
    return this.loras.plan(prepared, flux, clip, log);
  }

  /**
   * Keeps a LoRA's matrices in the inference worker (once per file, the last few files), so
   * switching to it binds by reference. Returns the key they are kept under.
   */
  private async keepLora(single: NonNullable<LoraPlan['single']>): Promise<string> {
    let kept = this.keptLoras.get(single.path);
    if (kept === undefined) {
      kept = this.worker.keep(single.path, single.arrays());
      kept.catch(() => this.keptLoras.delete(single.path));
      this.keptLoras.set(single.path, kept);
      for (const old of [...this.keptLoras.keys()].slice(0, -KEPT_LORAS)) {
        this.keptLoras.delete(old);
        await this.worker.forget(old);
      }
    }
    await kept;
    return single.path;
  }

  /** Binds the plan's LoRAs to a loaded transformer: everything when the files changed, only strengths otherwise. */
  private async bindLoras(transformer: FluxTransformer, plan: LoraPlan): Promise<void> {
    const bound = this.boundLoras.get(transformer);
    const scales = JSON.stringify(plan.scales);
    if (bound?.key === plan.key && bound.scales === scales) return;
    this.boundLoras.delete(transformer);
    if (bound?.key === plan.key) await transformer.setLowRankScales(plan.scales);
    else if (plan.single !== undefined) await transformer.setLowRank(plan.transformer(await this.keepLora(plan.single)), { transfer: true });
    else await transformer.setLowRank(plan.transformer(), { transfer: true });
    this.boundLoras.set(transformer, { key: plan.key, scales });
  }

  private async encodeText(
    pipeline: PipelineAssets,
    prompt: string,
    goFast: boolean,
    plan: LoraPlan,
    log: Log,
    signal?: AbortSignal,
  ): Promise<TextConditioning> {
    const { text } = await this.components(pipeline, goFast);
    let conditioner = this.conditioners.get(text.key);
    if (conditioner === undefined) {
      conditioner = new TextConditioner(this.worker, {
        t5: pipeline.t5,
        clip: pipeline.clip,
        t5Tokenizer: pipeline.t5Tokenizer,
        clipTokenizer: pipeline.clipTokenizer,
        t5Precision: this.t5Precision(goFast),
        cacheDir: this.cacheDir,
        devices: { t5: this.devices.devices.t5, clip: this.devices.devices.clip },
      });
      this.conditioners.set(text.key, conditioner);
    }
    await conditioner.setClipLowRank(plan.clip, plan.clipKey);
    const length = T5_LENGTH[pipeline.variant];
    if (!conditioner.cached(prompt, length)) {
      const loaded = conditioner;
      // The pool times the load, accounts for the encoders and releases them when evicted.
      await this.pools[text.device].acquire(text.key, text.label, text.bytes, log, async () => {
        await loaded.load();
        return { release: () => loaded.release() };
      });
    }
    const embeddings = await conditioner.encode(prompt, length, { signal });
    const cut = [...(embeddings.truncated.clip ? [`CLIP ${CLIP_LENGTH}`] : []), ...(embeddings.truncated.t5 ? [`T5 ${length}`] : [])];
    // As the reference, the encoders get the prompt's first tokens; said once per prediction.
    if (cut.length > 0) log(`[!] The prompt is longer than the text encoders take: truncated to ${cut.join(' and ')} tokens`);
    return { t5: embeddings.t5, pooled: embeddings.pooled };
  }

  private async transformer(pipeline: PipelineAssets, goFast: boolean, log: Log): Promise<FluxTransformer> {
    const { transformer: component } = await this.components(pipeline, goFast);
    const precision: FluxPrecision = goFast ? 'int8' : 'exact';
    const transformer = await this.pools[component.device].acquire(component.key, component.label, component.bytes, log, () =>
      FluxTransformer.load(this.worker, pipeline.transformer, { precision, cacheDir: this.cacheDir, session: { device: component.device } }),
    );
    if (transformer.config.guidanceEmbed !== (pipeline.variant === 'dev')) {
      throw new ModelAssetsError(
        this.assets.root,
        `${pipeline.transformer} was configured as FLUX.1-${pipeline.variant} but ${transformer.config.guidanceEmbed ? 'has' : 'lacks'} the guidance embedding of FLUX.1-dev`,
      );
    }
    return transformer;
  }

  private async vae(pipeline: PipelineAssets, goFast: boolean, log: Log): Promise<Vae> {
    const { vae } = await this.components(pipeline, goFast);
    return this.pools[vae.device].acquire(vae.key, vae.label, vae.bytes, log, () => Vae.load(this.worker, pipeline.vae, { device: vae.device }));
  }

  /** The VAE's config from its checkpoint header, without loading it (the denoiser needs its factor and channels). */
  private vaeConfig(pipeline: PipelineAssets): Promise<VaeConfig> {
    return this.once(`vae:${pipeline.vae}`, async () => (await openVaeCheckpoint(pipeline.vae)).config);
  }

  private async run(input: ResolvedInput, options: PredictOptions): Promise<PredictionResult> {
    const progress = { doing: 'preparing the prediction' };
    try {
      return await this.generate(input, options, progress);
    } catch (error) {
      // Says where the prediction was when the engine stopped, e.g. "during step 7/28".
      if (error instanceof EngineStoppedError) throw new EngineStoppedError(error.reason, `during ${progress.doing}`);
      throw error;
    }
  }

  private async generate(input: ResolvedInput, options: PredictOptions, progress: { doing: string }): Promise<PredictionResult> {
    const started = performance.now();
    const log = options.log ?? (() => undefined);
    const signal = options.signal;
    const checkCancelled = (stage: string) => {
      if (signal?.aborted) throw new RunCancelledError(stage);
    };
    const timer = { lora: 0, load: 0, text: 0, denoise: 0, decode: 0, safety: 0, encode: 0 };
    const timed = async <T>(stage: keyof typeof timer, work: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      try {
        return await work();
      } finally {
        timer[stage] += performance.now() - t0;
      }
    };
    const pipeline = this.assets.pipelines[input.model] as PipelineAssets;

    // LoRAs first: a bad source or file fails the request before any model work.
    const requested = input.loras.map((l) => ({ ...l, scale: l.scale * (input.goFast ? GO_FAST_LORA_MULTIPLIER : 1) }));
    const plan = await timed('lora', async () => {
      const prepared = await this.loras.prepare(requested, signal);
      return this.planLoras(pipeline, prepared, log);
    });
    if (requested.length > 0) log(`Loaded LoRAs in ${(timer.lora / 1000).toFixed(2)}s`);
    log(`Using seed: ${input.seed}`);
    if (input.numOutputs > 1) {
      log(
        `Seeds per output: ${Array.from({ length: input.numOutputs }, (_, i) => `${outputName(i, input.outputFormat)} ${outputSeed(input.seed, i)}`).join(', ')}`,
      );
    }
    log(`Prompt: ${input.prompt}`);
    log(`[!] ${input.mode} mode`);
    input.unused.forEach((line) => log(line));
    let prepared: PreparedImage | undefined;
    if (input.image !== undefined) {
      const source = { ...DEFAULT_IMAGE_SOURCE, maxPixels: DEFAULT_MAX_PIXELS, ...this.options.imageSource };
      prepared = await prepareImageInputs(input.image, input.mask, source, log);
    }
    const size = prepared ?? (input.size as { width: number; height: number });
    checkCancelled('the prediction (before text encoding)');

    const result = await runFluxPipeline(
      {
        vaeConfig: await this.vaeConfig(pipeline),
        vae: () => {
          progress.doing = 'the VAE';
          return timed('load', () => this.vae(pipeline, input.goFast, log));
        },
        encodePrompt: () => {
          progress.doing = 'text encoding';
          return timed('text', () => this.encodeText(pipeline, input.prompt, input.goFast, plan, log, signal));
        },
        transformer: async () => {
          progress.doing = 'loading the transformer';
          const transformer = await timed('load', () => this.transformer(pipeline, input.goFast, log));
          await timed('lora', () => this.bindLoras(transformer, plan));
          progress.doing = 'the first denoising step';
          return transformer;
        },
      },
      {
        width: size.width,
        height: size.height,
        numOutputs: input.numOutputs,
        steps: input.steps,
        guidance: input.guidance,
        image:
          prepared === undefined
            ? undefined
            : { pixels: prepared.tensor, strength: input.promptStrength, ...(prepared.mask === undefined ? {} : { mask: prepared.mask }) },
        noise: seededNoise(input.seed, randn),
        onStep: (output, step) => {
          // The work in flight after this step: the next step, the next output's first, or decoding.
          const [next, of] = step.step < step.total ? [step.step + 1, output] : [1, output + 1];
          const ofOutput = input.numOutputs > 1 ? ` of output ${of + 1}/${input.numOutputs}` : '';
          progress.doing = of < input.numOutputs ? `step ${next}/${step.total}${ofOutput}` : 'decoding';
          options.onProgress?.({ output, outputs: input.numOutputs, step: step.step, total: step.total, elapsedMs: step.elapsedMs });
        },
        stage: timed,
        signal,
      },
    );
    const images = result.outputs.map((output) => tensorToImage(output.image, 0));
    progress.doing = 'the safety check';
    const kept = input.disableSafetyChecker ? images.map((_, i) => i) : await timed('safety', () => this.safeIndices(images, log, signal));
    const encoded: { name: string; bytes: Buffer }[] = [];
    for (const i of kept) {
      const bytes = await timed('encode', () => encodeImage(images[i] as RgbImage, input.outputFormat, input.outputQuality));
      encoded.push({ name: outputName(i, input.outputFormat), bytes });
    }
    checkCancelled('the prediction (before writing outputs)');
    const files = await writeOutputs(options.outputDir, encoded, log);
    const seconds = (ms: number) => Math.round(ms) / 1000;
    return {
      files,
      seed: input.seed,
      metrics: {
        predict_time: seconds(performance.now() - started),
        lora_time: seconds(timer.lora),
        load_time: seconds(timer.load),
        text_time: seconds(timer.text),
        denoise_time: seconds(timer.denoise),
        decode_time: seconds(timer.decode),
        safety_time: seconds(timer.safety),
        encode_time: seconds(timer.encode),
      },
    };
  }

  /**
   * The indices of the images the safety checker lets through (docs/reference-behaviour.md §4.10),
   * logging each dropped one; every image dropped fails the prediction with the reference's message.
   */
  async safeIndices(images: readonly RgbImage[], log: Log, signal?: AbortSignal): Promise<number[]> {
    if (this.safety === 'disabled') throw new Error('the safety checker is disabled on this server');
    const paths = this.safety;
    this.checker ??= SafetyChecker.load(this.worker, paths, this.devices.devices.safety).catch((error: unknown) => {
      this.checker = null;
      throw error;
    });
    const verdicts = await (await this.checker).check(images, signal);
    for (const v of verdicts.filter((x) => x.unsafe)) {
      if (v.error !== undefined) log(`Error running safety checker: ${v.error}`);
      log(`NSFW content detected in image ${v.index}`);
    }
    const kept = verdicts.filter((v) => !v.unsafe).map((v) => v.index);
    if (kept.length === 0) throw new AllImagesUnsafeError();
    log(`Total safe images: ${kept.length} out of ${images.length}`);
    return kept;
  }

  /** Waits for queued predictions, then releases every model and stops the inference worker. */
  async close(): Promise<void> {
    await this.queue;
    if (this.checker !== null) await (await this.checker.catch(() => null))?.release();
    await this.releaseAll();
    await this.worker.close();
  }
}

/**
 * Writes every file or none: each goes to a temp name first, then all are renamed into place.
 * A file of the same name is replaced, and the log says so (docs/decisions.md "output names").
 */
async function writeOutputs(dir: string, outputs: { name: string; bytes: Buffer }[], log: Log): Promise<string[]> {
  const folder = resolve(dir);
  await mkdir(folder, { recursive: true });
  const tag = randomBytes(4).toString('hex');
  const staged = outputs.map((o) => ({ temp: join(folder, `.${o.name}.${tag}.partial`), final: join(folder, o.name), bytes: o.bytes }));
  try {
    for (const s of staged) await writeFile(s.temp, s.bytes);
    for (const s of staged) {
      if (existsSync(s.final)) log(`Replacing the existing ${displayPath(s.final)}`);
      await rename(s.temp, s.final);
    }
  } finally {
    await Promise.all(staged.map((s) => rm(s.temp, { force: true })));
  }
  return staged.map((s) => s.final);
}
