/**
 * The FLUX autoencoder's encoder and decoder as ONNX graphs (docs/flux-math.md §2.11).
 * Tensors are addressed by their diffusers names; weights stay in the checkpoint file.
 */
import type { Device } from '../../onnx/device.js';
import { GraphBuilder, type BuiltModel, type Value } from '../../onnx/graph.js';
import * as op from '../../onnx/ops/index.js';
import { externalRef, floatWeight } from '../common/stored-weights.js';
import type { VaeCheckpoint } from './checkpoint.js';
import { vaeTensors } from './layout.js';

const GN_EPS = 1e-6;

class VaeGraph {
  readonly g: GraphBuilder;
  private readonly shapes: Map<string, number[]>;

  constructor(
    name: string,
    private readonly checkpoint: VaeCheckpoint,
    device: Device,
  ) {
    this.g = new GraphBuilder(name, { device });
    this.shapes = new Map(vaeTensors(checkpoint.config).map((t) => [t.name, t.shape]));
  }

  /** A parameter as float32 in its canonical shape (BFL's 1×1 attention convs are read as [C, C]). */
  private param(name: string, anchor?: Value): Value {
    const info = this.checkpoint.locate(name);
    return floatWeight(this.g, name, { ...externalRef(info), shape: this.shapes.get(name) as number[] }, anchor);
  }

  private groupNorm(x: Value, name: string): Value {
    return op.groupNorm(this.g, x, {
      groups: this.checkpoint.config.groups,
      scale: this.param(`${name}.weight`),
      bias: this.param(`${name}.bias`),
      epsilon: GN_EPS,
      name,
    });
  }

  private conv(x: Value, name: string, options: op.ConvOptions = {}): Value {
    const k = this.shapes.get(`${name}.weight`)?.[2] as number;
    const pad = (k - 1) / 2;
    return op.conv(this.g, x, this.param(`${name}.weight`, x), this.param(`${name}.bias`), { pads: [pad, pad, pad, pad], name, ...options });
  }

  /** x + conv2(swish(GN2(conv1(swish(GN1(x)))))), with a 1×1 shortcut when channels change. */
  private resnet(x: Value, prefix: string): Value {
    const { g } = this;
    const h1 = this.conv(op.silu(g, this.groupNorm(x, `${prefix}.norm1`)), `${prefix}.conv1`);
    const h2 = this.conv(op.silu(g, this.groupNorm(h1, `${prefix}.norm2`)), `${prefix}.conv2`);
    const shortcut = this.shapes.has(`${prefix}.conv_shortcut.weight`) ? this.conv(x, `${prefix}.conv_shortcut`) : x;
    return op.add(g, shortcut, h2, `${prefix}.residual`);
  }

  /** Single-head self-attention over the H·W positions, scale 1/√C, residual. */
  private attention(x: Value, prefix: string): Value {
    const { g } = this;
    const c = this.shapes.get(`${prefix}.to_q.weight`)?.[0] as number;
    return g.scope(prefix, () => {
      const tokens = op.transpose(g, op.reshape(g, this.groupNorm(x, `${prefix}.group_norm`), [0, c, -1]), [0, 2, 1]);
      const linear = (h: Value, name: string) =>
        op.add(g, op.matmulTransposed(g, h, this.param(`${prefix}.${name}.weight`)), this.param(`${prefix}.${name}.bias`));
      const attended = op.attention(g, linear(tokens, 'to_q'), linear(tokens, 'to_k'), linear(tokens, 'to_v'), {
        numHeads: 1,
        scale: 1 / Math.sqrt(c),
      });
      const projected = op.transpose(g, linear(attended, 'to_out.0'), [0, 2, 1]);
      return op.add(g, x, op.reshape(g, projected, op.shapeOf(g, x)));
    });
  }

  private mid(x: Value, side: string): Value {
    const h = this.resnet(x, `${side}.mid_block.resnets.0`);
    return this.resnet(this.attention(h, `${side}.mid_block.attentions.0`), `${side}.mid_block.resnets.1`);
  }

  private out(x: Value, side: string): Value {
    return this.conv(op.silu(this.g, this.groupNorm(x, `${side}.conv_norm_out`)), `${side}.conv_out`);
  }

  /** image [B, 3, H, W] in [-1, 1] → posterior mean and logvar [B, z, H/f, W/f]. */
  encoder(): BuiltModel {
    const { g } = this;
    const c = this.checkpoint.config;
    let h = this.conv(g.input('image', 'float32', ['batch', c.inChannels, 'height', 'width']), 'encoder.conv_in');
    c.blockOutChannels.forEach((_, i) => {
      for (let j = 0; j < c.layersPerBlock; j++) h = this.resnet(h, `encoder.down_blocks.${i}.resnets.${j}`);
      // Downsample: zero-pad right and bottom by one, 3×3 conv with stride 2.
      if (i < c.blockOutChannels.length - 1) h = this.conv(h, `encoder.down_blocks.${i}.downsamplers.0.conv`, { pads: [0, 0, 1, 1], strides: [2, 2] });
    });
    const moments = this.out(this.mid(h, 'encoder'), 'encoder');
    const [mean, logvar] = op.split(g, moments, 1, [c.latentChannels, c.latentChannels], 'moments');
    g.output(mean as Value, 'mean');
    g.output(logvar as Value, 'logvar');
    return g.build();
  }

  /** raw latent [B, z, h, w] → image [B, 3, h·f, w·f] (not clamped). */
  decoder(): BuiltModel {
    const { g } = this;
    const c = this.checkpoint.config;
    let h = this.mid(this.conv(g.input('latent', 'float32', ['batch', c.latentChannels, 'height', 'width']), 'decoder.conv_in'), 'decoder');
    c.blockOutChannels.forEach((_, k) => {
      for (let j = 0; j <= c.layersPerBlock; j++) h = this.resnet(h, `decoder.up_blocks.${k}.resnets.${j}`);
      if (k < c.blockOutChannels.length - 1) {
        h = this.conv(op.resize(g, h, { scales: [1, 1, 2, 2], mode: 'nearest' }), `decoder.up_blocks.${k}.upsamplers.0.conv`);
      }
    });
    g.output(this.out(h, 'decoder'), 'image');
    return g.build();
  }
}

export function buildVaeEncoder(checkpoint: VaeCheckpoint, device: Device = 'cpu'): BuiltModel {
  return new VaeGraph('vae-encoder', checkpoint, device).encoder();
}

export function buildVaeDecoder(checkpoint: VaeCheckpoint, device: Device = 'cpu'): BuiltModel {
  return new VaeGraph('vae-decoder', checkpoint, device).decoder();
}
