/** What an evaluator of `flux-lora eval` is asked, and what it offers. */
import type { Device } from '../onnx/device.js';
import type { DeviceComponent } from '../onnx/device-plan.js';

export interface EvalRequest {
  /** Checkpoint file or folder of the component. */
  model: string;
  /** Golden case file (.safetensors) with inputs named `case<k>.<name>`. */
  casePath: string;
  /** Where to write the outputs, under the names the test/golden/data/README.md uses. */
  outPath: string;
  /** LoRA files with their strengths (components that take LoRAs only). */
  loras: { path: string; scale: number }[];
  /** Where each model component runs (--device). */
  devices: Record<DeviceComponent, Device>;
}

export interface Evaluator {
  component: string;
  summary: string;
  acceptsLoras: boolean;
  evaluate(request: EvalRequest): Promise<void>;
}
