/**
 * The FLUX.1 transformer as an ONNX graph (docs/flux-math.md §2.2–2.8), for any config.
 * Weights come from a FluxParameters source (exact float or 8/4-bit quantized); with
 * `lora` every linear also takes low-rank inputs so LoRAs are fed at run time.
 */
import type { Device } from '../../onnx/device.js';
import { GraphBuilder, type Value } from '../../onnx/graph.js';
import { attr } from '../../onnx/onnx-proto.js';
import * as op from '../../onnx/ops/index.js';
import type { FluxConfig } from './config.js';
import { lowRankInputs } from '../common/low-rank.js';
import { linearSpecs, type LinearSpec } from './layout.js';

export interface FluxParameters {
  /** x·Wᵀ + b (+ biasDelta) for the canonical linear `spec.name`. */
  linear(g: GraphBuilder, x: Value, spec: LinearSpec, biasDelta?: Value): Value;
  /** A float32 vector parameter (QK-norm scale) by canonical name. */
  vector(g: GraphBuilder, name: string): Value;
}

export interface FluxGraphOptions {
  name?: string;
  /** Give every linear `lora.<name>.down` [in, r], `lora.<name>.up` [r, out] and `lora.<name>.bias` [out] inputs. */
  lora?: boolean;
  /** The execution provider the graph is for (default cpu). */
  device?: Device;
}

export const FLUX_INPUTS = {
  hiddenStates: 'hidden_states',
  encoderHiddenStates: 'encoder_hidden_states',
  pooled: 'pooled_projections',
  timestepEmbedding: 'timestep_embedding',
  guidanceEmbedding: 'guidance_embedding',
  ropeCos: 'rope_cos',
  ropeSin: 'rope_sin',
  ropePositions: 'rope_positions',
} as const;
export const FLUX_OUTPUT = 'velocity';

const LN_EPS = 1e-6;
const RMS_EPS = 1e-6;

class FluxGraph {
  readonly g: GraphBuilder;
  private readonly specs: Map<string, LinearSpec>;
  private readonly ones: Value;
  private rope!: { cos: Value; sin: Value; positions: Value };
  private tokenLengths!: Value;

  constructor(
    private readonly c: FluxConfig,
    private readonly params: FluxParameters,
    private readonly options: FluxGraphOptions,
  ) {
    this.g = new GraphBuilder(options.name ?? 'flux-transformer', { device: options.device });
    this.specs = new Map(linearSpecs(c).map((s) => [s.name, s]));
    this.ones = this.g.constant('float32', [c.hidden], new Float32Array(c.hidden).fill(1));
  }

  /**
   * A canonical linear; with LoRA inputs, plus its low-rank update x·down·up and a bias delta
   * (BFL-style LoRAs train one). The bias delta is added to the [out] bias vector, not to
   * the [B, L, out] output.
   */
  private linear(x: Value, name: string): Value {
    const spec = this.specs.get(name);
    if (spec === undefined) throw new Error(`FLUX graph: no linear "${name}"`);
    const { g } = this;
    return g.scope(name, () => {
      if (!this.options.lora) return this.params.linear(g, x, spec);
      const lowRank = lowRankInputs(g, spec);
      return lowRank.apply(x, this.params.linear(g, x, spec, lowRank.bias));
    });
  }

  private layerNorm(x: Value): Value {
    return op.layerNorm(this.g, x, { scale: this.ones, epsilon: LN_EPS });
  }

  /** LN(x)·(1 + scale) + shift, with shift/scale [B, 1, D] broadcast over tokens. */
  private modulate(x: Value, shift: Value, scale: Value): Value {
    const { g } = this;
    return op.add(g, op.mul(g, this.layerNorm(x), op.add(g, scale, 1)), shift);
  }

  /** Linear(SiLU(vec)) split into `parts` chunks of [B, 1, D]. */
  private modulation(siluVec: Value, name: string, parts: number): Value[] {
    const { g } = this;
    const mod = op.unsqueeze(g, this.linear(siluVec, name), [1]);
    return g.scope(name, () => op.split(g, mod, -1, Array(parts).fill(this.c.hidden), 'chunks'));
  }

  /** QK RMSNorm over each head's channels (§2.1) of x [B, L, H·d]. */
  private headNorm(x: Value, scaleName: string): Value {
    const { g, c } = this;
    const heads = op.reshape(g, x, [0, 0, c.heads, c.headDim]);
    const normed = op.rmsNorm(g, heads, this.params.vector(g, scaleName), RMS_EPS);
    return op.reshape(g, normed, [0, 0, c.hidden]);
  }

  /** RoPE (§2.3) on the joint sequence [text ; image]. */
  private rotate(x: Value): Value {
    const { g, c } = this;
    return op.rotaryEmbedding(g, x, this.rope.cos, this.rope.sin, this.rope.positions, { numHeads: c.heads, interleaved: true });
  }

  /** softmax(q·kᵀ/√d)·v per head, no mask (§2.4). */
  private attention(q: Value, k: Value, v: Value): Value {
    return op.attention(this.g, q, k, v, { numHeads: this.c.heads, scale: 1 / Math.sqrt(this.c.headDim) });
  }

  /** Splits [B, M+N, D] into text [B, M, D] and image [B, N, D] by the run-time lengths [M, N]. */
  private splitTokens(z: Value, like: { text: Value; image: Value }): [Value, Value] {
    const node = this.g.op('Split', 'split_tokens');
    const outputs = node.emit(
      [z, this.tokenLengths],
      [
        { dtype: 'float32', shape: [z.shape?.[0] ?? null, like.text.shape?.[1] ?? null, this.c.hidden] },
        { dtype: 'float32', shape: [z.shape?.[0] ?? null, like.image.shape?.[1] ?? null, this.c.hidden] },
      ],
      { axis: attr.int(1) },
    );
    return [outputs[0] as Value, outputs[1] as Value];
  }

  /** §2.5: one double-stream block on image X and text C. */
  private doubleBlock(n: number, x: Value, ctx: Value, siluVec: Value): [Value, Value] {
    const { g } = this;
    const p = `double_blocks.${n}`;
    return g.scope(p, () => {
      const [xShift1, xScale1, xGate1, xShift2, xScale2, xGate2] = this.modulation(siluVec, `${p}.img_mod.lin`, 6) as Six;
      const [cShift1, cScale1, cGate1, cShift2, cScale2, cGate2] = this.modulation(siluVec, `${p}.txt_mod.lin`, 6) as Six;
      const xm = this.modulate(x, xShift1, xScale1);
      const cm = this.modulate(ctx, cShift1, cScale1);
      const project = (stream: 'img' | 'txt', h: Value, part: 'q' | 'k' | 'v') => {
        const y = this.linear(h, `${p}.${stream}_attn.${part}`);
        if (part === 'v') return y;
        return this.headNorm(y, `${p}.${stream}_attn.norm.${part === 'q' ? 'query' : 'key'}_norm.scale`);
      };
      const joint = (part: 'q' | 'k' | 'v') => op.concat(g, [project('txt', cm, part), project('img', xm, part)], 1);
      const attn = this.attention(this.rotate(joint('q')), this.rotate(joint('k')), joint('v'));
      const [attnText, attnImage] = this.splitTokens(attn, { text: ctx, image: x });
      const mlp = (stream: 'img' | 'txt', h: Value) => this.linear(op.gelu(g, this.linear(h, `${p}.${stream}_mlp.0`), 'tanh'), `${p}.${stream}_mlp.2`);
      let xOut = op.add(g, x, op.mul(g, xGate1, this.linear(attnImage, `${p}.img_attn.proj`)));
      xOut = op.add(g, xOut, op.mul(g, xGate2, mlp('img', this.modulate(xOut, xShift2, xScale2))));
      let cOut = op.add(g, ctx, op.mul(g, cGate1, this.linear(attnText, `${p}.txt_attn.proj`)));
      cOut = op.add(g, cOut, op.mul(g, cGate2, mlp('txt', this.modulate(cOut, cShift2, cScale2))));
      return [xOut, cOut];
    });
  }

  /** §2.6: one single-stream block on Z = [C ; X]. */
  private singleBlock(n: number, z: Value, siluVec: Value): Value {
    const { g } = this;
    const p = `single_blocks.${n}`;
    return g.scope(p, () => {
      const [shift, scale, gate] = this.modulation(siluVec, `${p}.modulation.lin`, 3) as [Value, Value, Value];
      const zm = this.modulate(z, shift, scale);
      const q = this.rotate(this.headNorm(this.linear(zm, `${p}.linear1.q`), `${p}.norm.query_norm.scale`));
      const k = this.rotate(this.headNorm(this.linear(zm, `${p}.linear1.k`), `${p}.norm.key_norm.scale`));
      const v = this.linear(zm, `${p}.linear1.v`);
      const mlp = op.gelu(g, this.linear(zm, `${p}.linear1.mlp`), 'tanh');
      const out = this.linear(op.concat(g, [this.attention(q, k, v), mlp], -1), `${p}.linear2`);
      return op.add(g, z, op.mul(g, gate, out));
    });
  }

  /** MLPEmb(z) = out_layer(SiLU(in_layer(z))) (§2.1). */
  private embedder(x: Value, name: string): Value {
    return this.linear(op.silu(this.g, this.linear(x, `${name}.in_layer`)), `${name}.out_layer`);
  }

  build() {
    const { g, c } = this;
    const batch = 'batch';
    const hidden = g.input(FLUX_INPUTS.hiddenStates, 'float32', [batch, 'image_tokens', c.inChannels]);
    const context = g.input(FLUX_INPUTS.encoderHiddenStates, 'float32', [batch, 'text_tokens', c.contextDim]);
    const pooled = g.input(FLUX_INPUTS.pooled, 'float32', [batch, c.pooledDim]);
    const timestep = g.input(FLUX_INPUTS.timestepEmbedding, 'float32', [batch, 256]);
    const guidance = c.guidanceEmbed ? g.input(FLUX_INPUTS.guidanceEmbedding, 'float32', [batch, 256]) : null;
    this.rope = {
      cos: g.input(FLUX_INPUTS.ropeCos, 'float32', ['tokens', c.headDim / 2]),
      sin: g.input(FLUX_INPUTS.ropeSin, 'float32', ['tokens', c.headDim / 2]),
      positions: g.input(FLUX_INPUTS.ropePositions, 'int64', [batch, 'tokens']),
    };

    // §2.2: vec = time_in(Emb(T)) [+ guidance_in(Emb(G))] + vector_in(pooled).
    let vec = this.embedder(timestep, 'time_in');
    if (guidance !== null) vec = op.add(g, vec, this.embedder(guidance, 'guidance_in'));
    vec = op.add(g, vec, this.embedder(pooled, 'vector_in'));
    const siluVec = op.silu(g, vec);

    let x = this.linear(hidden, 'img_in');
    let ctx = this.linear(context, 'txt_in');
    const lengthOf = (v: Value) => op.gather(g, op.shapeOf(g, v), g.int64s([1]));
    this.tokenLengths = op.concat(g, [lengthOf(context), lengthOf(hidden)], 0, 'token_lengths');
    const textLike = ctx;
    const imageLike = x;
    for (let n = 0; n < c.doubleBlocks; n++) [x, ctx] = this.doubleBlock(n, x, ctx, siluVec);
    let z = op.concat(g, [ctx, x], 1, 'joint_tokens');
    for (let n = 0; n < c.singleBlocks; n++) z = this.singleBlock(n, z, siluVec);
    const [, image] = this.splitTokens(z, { text: textLike, image: imageLike });

    // §2.7: final adaptive norm (shift, scale) and projection.
    const shift = op.unsqueeze(g, this.linear(siluVec, 'final_layer.adaLN_modulation.1.shift'), [1]);
    const scale = op.unsqueeze(g, this.linear(siluVec, 'final_layer.adaLN_modulation.1.scale'), [1]);
    g.output(this.linear(this.modulate(image, shift, scale), 'final_layer.linear'), FLUX_OUTPUT);
    return g.build();
  }
}

type Six = [Value, Value, Value, Value, Value, Value];

/** Builds the serialized transformer graph. */
export function buildFluxGraph(config: FluxConfig, params: FluxParameters, options: FluxGraphOptions = {}) {
  return new FluxGraph(config, params, options).build();
}
