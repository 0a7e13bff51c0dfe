/**
 * The two-stage safety checker of cog-flux (docs/reference-behaviour.md §4.10, test/golden/data/safety/README.md
 * §4): stage 1 (the Stable Diffusion safety checker) on all images in one batch; stage 2 (the
 * ViT classifier, batch of 1 on the original image) only on the images stage 1 flags, which
 * are unsafe unless it labels them "normal". A stage-2 failure counts the image unsafe; the
 * caller logs it as `Error running safety checker: <error>`. Both models load once and stay.
 */
import type { Device } from '../onnx/device.js';
import type { RgbImage } from '../images/decode.js';
import { ClipVisionModel } from '../models/safety/clip-vision.js';
import { SAFE_LABEL, ViTClassifier } from '../models/safety/vit-classifier.js';
import { RunCancelledError } from '../onnx/errors.js';
import type { InferenceWorker } from '../onnx/runner.js';
import type { TensorData } from '../onnx/tensor-data.js';
import { conceptDecisions } from '../models/safety/concepts.js';

export interface SafetyPaths {
  /** The diffusers `safety_checker/` folder (config.json + model.safetensors), a pipeline root holding it, or the weights file. */
  checker: string;
  /** The classifier's Hugging Face folder (config.json with id2label + model.safetensors). */
  classifier: string;
}

export interface SafetyVerdict {
  index: number;
  unsafe: boolean;
  stage1Flagged: boolean;
  /** The classifier's label, when stage 2 ran and succeeded. */
  stage2Label?: string;
  /** Why stage 2 failed (the image then counts unsafe). */
  error?: string;
}

export class SafetyChecker {
  private constructor(
    readonly stage1: ClipVisionModel,
    readonly stage2: ViTClassifier,
  ) {}

  static async load(worker: InferenceWorker, paths: SafetyPaths, device: Device = 'cpu'): Promise<SafetyChecker> {
    const stage1 = await ClipVisionModel.load(worker, paths.checker, { device });
    try {
      return new SafetyChecker(stage1, await ViTClassifier.load(worker, paths.classifier, { device }));
    } catch (error) {
      await stage1.release();
      throw error;
    }
  }

  /** Stage 1 on all images in one batch; stage 2 only on flagged ones. Images are checked first (SafetyInputError names the bad one). */
  async check(images: readonly RgbImage[], signal?: AbortSignal): Promise<SafetyVerdict[]> {
    if (images.length === 0) return [];
    const pixels = this.stage1.preprocess(images.map((image, index) => ({ image, index })));
    const embeds = (await this.stage1.run(pixels, { signal })).image_embeds as TensorData;
    const verdicts: SafetyVerdict[] = [];
    for (const [index, decision] of conceptDecisions(embeds, this.stage1.concepts).entries()) {
      verdicts.push(decision.hasNsfw ? await this.secondOpinion(images[index] as RgbImage, index, signal) : { index, unsafe: false, stage1Flagged: false });
    }
    return verdicts;
  }

  private async secondOpinion(image: RgbImage, index: number, signal: AbortSignal | undefined): Promise<SafetyVerdict> {
    try {
      const logits = (await this.stage2.run(this.stage2.preprocess([{ image, index }]), { signal })).logits as TensorData;
      const label = this.stage2.label(this.stage2.argmax(logits)[0] as number);
      return { index, unsafe: label !== SAFE_LABEL, stage1Flagged: true, stage2Label: label };
    } catch (error) {
      if (error instanceof RunCancelledError || signal?.aborted) throw error;
      return { index, unsafe: true, stage1Flagged: true, error: error instanceof Error ? error.message : String(error) };
    }
  }

  async release(): Promise<void> {
    await this.stage1.release();
    await this.stage2.release();
  }
}
