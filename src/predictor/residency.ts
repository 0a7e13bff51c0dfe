/**
 * Which model components stay loaded between and within predictions. Every component is
 * loaded through the pool with an estimate of the memory it holds; before a load, the
 * least recently used components are released until the new one fits the budget. On a
 * machine that holds everything, everything stays resident; on a small one, the components
 * load and release in turn (T5 → transformer → VAE), which is the same rule at a small budget.
 */
import { totalmem } from 'node:os';
import type { Device } from '../onnx/device.js';
import { openTensorSource } from '../weights/safetensors.js';
import { DTYPE_BYTES } from '../weights/dtypes.js';

export interface Releasable {
  release(): Promise<void>;
}

interface Entry {
  bytes: number;
  component: Releasable;
  label: string;
}

/** Default budget: 75% of physical memory (leaves room for activations, the OS and page cache). */
export function defaultMemoryBudget(): number {
  return Math.floor(totalmem() * 0.75);
}

export const GIB = 1024 ** 3;

/** Anonymous memory of a session whose 8-bit weights stay mapped, per parameter (T5-XXL after encoding 256 tokens: 0.24 GiB for 4.76 B params, the engine process included). */
const MAPPED_BYTES_PER_PARAM = 0.05;

/** How a component's weights are held: as stored, block-quantized (prepacked), or 8-bit left mapped from the cache file. */
export type ResidentForm = 'exact' | 'int8' | 'int8-mapped' | 'int4';

/**
 * Memory a component holds once loaded, from its checkpoint header: stored weights are read
 * as they are (with just-in-time casts, measured at 1.3× the stored bytes at peak); 8-bit
 * block quantization holds ~1.1 bytes per parameter (weights, scales and zero points) and
 * peaked at 1.2 (FLUX.1-dev 13.2 GiB, T5-XXL 5.2 GiB), 4-bit at about half that. 8-bit weights
 * left mapped (int8-mapped: not prepacked) are page cache the kernel can drop and read again, not
 * counted; what such a session holds besides is activations (MAPPED_BYTES_PER_PARAM, measured on
 * T5-XXL: docs/onnxruntime.md §10.8). On WebGPU exact weights are float32 on the device (casts are
 * folded at load: docs/webgpu.md finding 5).
 */
export async function estimateResidentBytes(path: string, form: ResidentForm, device: Device = 'cpu'): Promise<number> {
  const source = await openTensorSource(path);
  let params = 0;
  let stored = 0;
  for (const name of source.names()) {
    const info = source.info(name);
    const count = info.shape.reduce((s, d) => s * d, 1);
    params += count;
    stored += count * (DTYPE_BYTES[info.dtype] ?? 4);
  }
  if (form === 'exact') return device === 'webgpu' ? params * 4 : Math.ceil(stored * 1.3);
  return Math.ceil(params * { int8: 1.2, 'int8-mapped': MAPPED_BYTES_PER_PARAM, int4: 0.6 }[form]);
}

export class ResidencyPool {
  private readonly entries = new Map<string, Entry>();

  /** `memory` names the budget in messages: "memory" (RAM) or "device memory" (the GPU's). */
  constructor(
    readonly budgetBytes: number,
    readonly memory = 'memory',
  ) {}

  get residentBytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.bytes;
    return sum;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The component under `key`, loaded (after making room) when it is not resident; marks it most recently used. */
  async acquire<T extends Releasable>(key: string, label: string, bytes: number, log: (line: string) => void, load: () => Promise<T>): Promise<T> {
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, existing);
      return existing.component as T;
    }
    for (const [other, entry] of this.entries) {
      if (this.residentBytes + bytes <= this.budgetBytes) break;
      this.entries.delete(other);
      log(
        `Releasing ${entry.label} (${(entry.bytes / GIB).toFixed(2)} GiB) to stay within the ${(this.budgetBytes / GIB).toFixed(1)} GiB ${this.memory} budget`,
      );
      await entry.component.release();
    }
    if (bytes > this.budgetBytes) {
      log(`Warning: ${label} needs about ${(bytes / GIB).toFixed(1)} GiB, more than the ${(this.budgetBytes / GIB).toFixed(1)} GiB ${this.memory} budget`);
    }
    const started = performance.now();
    const component = await load();
    this.entries.set(key, { bytes, component, label });
    log(`Loaded ${label} in ${((performance.now() - started) / 1000).toFixed(2)}s`);
    return component;
  }

  async releaseAll(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    for (const e of entries) await e.component.release();
  }
}
