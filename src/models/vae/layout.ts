/**
 * The autoencoder's tensors under diffusers names (used as canonical), their shapes for a
 * config, and the BFL `ae.safetensors` name of each (docs/flux-math.md §3.4).
 */
import type { VaeConfig } from './config.js';

export type VaeLayout = 'bfl' | 'diffusers';

export interface VaeTensor {
  name: string;
  shape: number[];
}

function resnet(out: VaeTensor[], prefix: string, cin: number, cout: number): void {
  out.push(
    { name: `${prefix}.norm1.weight`, shape: [cin] },
    { name: `${prefix}.norm1.bias`, shape: [cin] },
    { name: `${prefix}.conv1.weight`, shape: [cout, cin, 3, 3] },
    { name: `${prefix}.conv1.bias`, shape: [cout] },
    { name: `${prefix}.norm2.weight`, shape: [cout] },
    { name: `${prefix}.norm2.bias`, shape: [cout] },
    { name: `${prefix}.conv2.weight`, shape: [cout, cout, 3, 3] },
    { name: `${prefix}.conv2.bias`, shape: [cout] },
  );
  if (cin !== cout) out.push({ name: `${prefix}.conv_shortcut.weight`, shape: [cout, cin, 1, 1] }, { name: `${prefix}.conv_shortcut.bias`, shape: [cout] });
}

function conv(out: VaeTensor[], name: string, cout: number, cin: number, k: number): void {
  out.push({ name: `${name}.weight`, shape: [cout, cin, k, k] }, { name: `${name}.bias`, shape: [cout] });
}

function midBlock(out: VaeTensor[], prefix: string, c: number): void {
  resnet(out, `${prefix}.mid_block.resnets.0`, c, c);
  const attn = `${prefix}.mid_block.attentions.0`;
  out.push({ name: `${attn}.group_norm.weight`, shape: [c] }, { name: `${attn}.group_norm.bias`, shape: [c] });
  for (const p of ['to_q', 'to_k', 'to_v', 'to_out.0']) out.push({ name: `${attn}.${p}.weight`, shape: [c, c] }, { name: `${attn}.${p}.bias`, shape: [c] });
  resnet(out, `${prefix}.mid_block.resnets.1`, c, c);
}

export function vaeTensors(c: VaeConfig): VaeTensor[] {
  const out: VaeTensor[] = [];
  const ch = c.blockOutChannels;
  const levels = ch.length;
  const top = ch[levels - 1] as number;
  conv(out, 'encoder.conv_in', ch[0] as number, c.inChannels, 3);
  ch.forEach((cout, i) => {
    for (let j = 0; j < c.layersPerBlock; j++) resnet(out, `encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? (ch[i - 1] ?? (ch[0] as number)) : cout, cout);
    if (i < levels - 1) conv(out, `encoder.down_blocks.${i}.downsamplers.0.conv`, cout, cout, 3);
  });
  midBlock(out, 'encoder', top);
  out.push({ name: 'encoder.conv_norm_out.weight', shape: [top] }, { name: 'encoder.conv_norm_out.bias', shape: [top] });
  conv(out, 'encoder.conv_out', 2 * c.latentChannels, top, 3);
  conv(out, 'decoder.conv_in', top, c.latentChannels, 3);
  midBlock(out, 'decoder', top);
  const reversed = [...ch].reverse();
  reversed.forEach((cout, k) => {
    for (let j = 0; j <= c.layersPerBlock; j++) resnet(out, `decoder.up_blocks.${k}.resnets.${j}`, j === 0 ? (reversed[k - 1] ?? top) : cout, cout);
    if (k < levels - 1) conv(out, `decoder.up_blocks.${k}.upsamplers.0.conv`, cout, cout, 3);
  });
  out.push({ name: 'decoder.conv_norm_out.weight', shape: [ch[0] as number] }, { name: 'decoder.conv_norm_out.bias', shape: [ch[0] as number] });
  conv(out, 'decoder.conv_out', c.outChannels, ch[0] as number, 3);
  return out;
}

/** The BFL key of a canonical (diffusers) tensor name, and its stored shape. */
export function bflTensor(c: VaeConfig, t: VaeTensor): VaeTensor {
  const levels = c.blockOutChannels.length;
  const name = t.name
    .replace(/^(encoder|decoder)\.mid_block\.resnets\.(\d)\./, (_, side: string, n: string) => `${side}.mid.block_${Number(n) + 1}.`)
    .replace('.mid_block.attentions.0.group_norm.', '.mid.attn_1.norm.')
    .replace(/\.mid_block\.attentions\.0\.to_(q|k|v)\./, '.mid.attn_1.$1.')
    .replace('.mid_block.attentions.0.to_out.0.', '.mid.attn_1.proj_out.')
    .replace(/^encoder\.down_blocks\.(\d+)\.resnets\./, 'encoder.down.$1.block.')
    .replace(/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\./, 'encoder.down.$1.downsample.')
    .replace(/^decoder\.up_blocks\.(\d+)\.resnets\./, (_, k: string) => `decoder.up.${levels - 1 - Number(k)}.block.`)
    .replace(/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\./, (_, k: string) => `decoder.up.${levels - 1 - Number(k)}.upsample.`)
    .replace('.conv_shortcut.', '.nin_shortcut.')
    .replace('.conv_norm_out.', '.norm_out.');
  const attnLinear = /\.mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(name);
  return { name, shape: attnLinear ? [...t.shape, 1, 1] : t.shape };
}

export function storedTensor(c: VaeConfig, layout: VaeLayout, t: VaeTensor): VaeTensor {
  return layout === 'bfl' ? bflTensor(c, t) : t;
}
