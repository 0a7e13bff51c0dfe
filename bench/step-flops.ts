/** The FLOP count of one FLUX transformer forward (a fixed number, so every step rate is comparable). */
import type { FluxConfig } from '../src/models/flux/config.js';
import { linearSpecs } from '../src/models/flux/layout.js';

/** FLOPs of one forward: 2·in·out per token for each linear, 4·L²·D per attention. */
export function stepFlops(c: FluxConfig, imageTokens: number, textTokens: number): { linear: number; attention: number } {
  const L = imageTokens + textTokens;
  let linear = 0;
  for (const s of linearSpecs(c)) {
    // Modulation linears act on one conditioning vector per sample, not on every token.
    const tokens = /\.(modulation|img_mod|txt_mod)\.lin$/.test(s.name)
      ? 1
      : s.name.startsWith('single_blocks.')
        ? L
        : /^double_blocks\.\d+\.img_(attn|mlp)|^img_in|^final_layer\.linear/.test(s.name)
          ? imageTokens
          : /^double_blocks\.\d+\.txt_(attn|mlp)|^txt_in/.test(s.name)
            ? textTokens
            : 1;
    linear += 2 * s.inFeatures * s.outFeatures * tokens;
  }
  return { linear, attention: (c.doubleBlocks + c.singleBlocks) * 4 * L * L * c.hidden };
}
