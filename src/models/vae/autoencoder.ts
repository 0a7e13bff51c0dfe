/**
 * The FLUX autoencoder as a ready-to-run model: encoder (image → posterior moments) and
 * decoder (latent → image) sessions in the inference worker, and the latent scaling
 * z = scale·(ẑ − shift) / ẑ = z/scale + shift (docs/flux-math.md §2.11).
 */
import type { InferenceWorker, RemoteSession } from '../../onnx/runner.js';
import type { SessionSettings } from '../../onnx/session-options.js';
import { float32Tensor, type TensorData } from '../../onnx/tensor-data.js';
import { openVaeCheckpoint, type VaeCheckpoint } from './checkpoint.js';
import { vaeScaleFactor, type VaeConfig } from './config.js';
import { buildVaeDecoder, buildVaeEncoder } from './graph.js';
import { planTiles, TileBlender } from './tiling.js';

export class VaeInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VaeInputError';
  }
}

export interface TilingOptions {
  /** Latent cells (h·w) above which decoding is tiled (default 128·128, i.e. 1024² pixels). */
  maxUntiledCells?: number;
  /** Largest tile edge and the overlap, in latent cells (defaults 128 and 16); tiles are sized evenly. */
  tileSize?: number;
  tileOverlap?: number;
}

export interface Posterior {
  mean: TensorData;
  logvar: TensorData;
}

function requireShape(name: string, t: TensorData, channels: number, multiple: number): void {
  const [, c, h, w] = t.dims;
  if (
    t.type !== 'float32' ||
    t.dims.length !== 4 ||
    c !== channels ||
    (h as number) < 1 ||
    (w as number) < 1 ||
    (h as number) % multiple !== 0 ||
    (w as number) % multiple !== 0
  ) {
    throw new VaeInputError(
      `input "${name}" must be float32 [batch, ${channels}, height, width] with height and width multiples of ${multiple}, got ${t.type} [${t.dims.join(', ')}]`,
    );
  }
}

/** Activations the arena may keep after a run: up to 1 GiB is worth the faster runs. */
const ARENA_LIMIT_BYTES = 1024 ** 3;

/**
 * The largest transient buffer of a decode at the biggest generation size (1440²): the im2col
 * scratch of a full-resolution 3×3 convolution, C₀·9 floats per pixel (4.8 GB for the real
 * VAE at 1024², matching its measured peak).
 */
function largestConvScratchBytes(config: VaeConfig): number {
  return (config.blockOutChannels[0] as number) * 9 * 4 * 1440 * 1440;
}

export class Vae {
  private constructor(
    readonly checkpoint: VaeCheckpoint,
    private readonly encoder: RemoteSession,
    private readonly decoder: RemoteSession,
  ) {}

  get config(): VaeConfig {
    return this.checkpoint.config;
  }

  /** Pixel size of one latent cell. */
  get scaleFactor(): number {
    return vaeScaleFactor(this.config);
  }

  /**
   * The sessions run without onnxruntime's memory arena when the activations are large: they
   * are shaped per image, and the arena kept growing across tiles (the real VAE at 1440² in 4
   * tiles peaked at 7.6 GiB with it, 3.5 GiB without, and ran faster: 146 s vs 178 s). Small
   * VAEs keep the arena: without it every run page-faults fresh buffers (a 1024² decode of the
   * built-in model took 2.8 s on first run without it, 0.7 s with it).
   */
  static async load(worker: InferenceWorker, path: string, settings: SessionSettings = {}): Promise<Vae> {
    const checkpoint = await openVaeCheckpoint(path);
    const sessionSettings = { memoryArena: largestConvScratchBytes(checkpoint.config) <= ARENA_LIMIT_BYTES, ...settings };
    const encoder = await worker.load(buildVaeEncoder(checkpoint, settings.device), sessionSettings);
    const decoder = await worker.load(buildVaeDecoder(checkpoint, settings.device), sessionSettings);
    return new Vae(checkpoint, encoder, decoder);
  }

  /** image [B, 3, H, W] in [-1, 1] → posterior mean and logvar (raw, before scaling). */
  async encode(image: TensorData, options: { signal?: AbortSignal } = {}): Promise<Posterior> {
    requireShape('image', image, this.config.inChannels, this.scaleFactor);
    const out = await this.encoder.run({ image }, { signal: options.signal });
    return { mean: out.mean as TensorData, logvar: out.logvar as TensorData };
  }

  /** z = scale·(ẑ − shift): a raw latent into the space the transformer works in. */
  normalize(latent: TensorData): TensorData {
    const { scalingFactor, shiftFactor } = this.config;
    return float32Tensor(
      latent.dims,
      (latent.data as Float32Array).map((v) => (v - shiftFactor) * scalingFactor),
    );
  }

  /**
   * Decodes a normalized latent [B, z, h, w] to an image [B, 3, h·f, w·f] (not clamped).
   * Large latents are decoded in overlapping tiles blended without seams (./vae/tiling.ts).
   */
  async decode(latent: TensorData, options: { signal?: AbortSignal; tiling?: TilingOptions } = {}): Promise<TensorData> {
    requireShape('latent', latent, this.config.latentChannels, 1);
    const { scalingFactor, shiftFactor } = this.config;
    const raw = float32Tensor(
      latent.dims,
      (latent.data as Float32Array).map((v) => v / scalingFactor + shiftFactor),
    );
    const [batch, channels, h, w] = latent.dims as [number, number, number, number];
    const tiling = options.tiling ?? {};
    if (h * w <= (tiling.maxUntiledCells ?? 128 * 128)) {
      return (await this.decoder.run({ latent: raw }, { signal: options.signal, transfer: true })).image as TensorData;
    }
    const size = tiling.tileSize ?? 128;
    const overlap = tiling.tileOverlap ?? 16;
    const f = this.scaleFactor;
    const blender = new TileBlender(batch, this.config.outChannels, h * f, w * f, overlap * f);
    for (const tile of planTiles(h, w, size, overlap)) {
      const part = new Float32Array(batch * channels * tile.h * tile.w);
      for (let bc = 0; bc < batch * channels; bc++) {
        for (let y = 0; y < tile.h; y++) {
          const from = (bc * h + tile.y + y) * w + tile.x;
          part.set((raw.data as Float32Array).subarray(from, from + tile.w), (bc * tile.h + y) * tile.w);
        }
      }
      const decoded = await this.decoder.run({ latent: float32Tensor([batch, channels, tile.h, tile.w], part) }, { signal: options.signal, transfer: true });
      blender.add((decoded.image as TensorData).data as Float32Array, tile.y * f, tile.x * f, tile.h * f, tile.w * f);
    }
    return float32Tensor([batch, this.config.outChannels, h * f, w * f], blender.result());
  }

  async release(): Promise<void> {
    await this.encoder.release();
    await this.decoder.release();
  }
}
