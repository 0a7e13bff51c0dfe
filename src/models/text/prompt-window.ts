/**
 * How much of a prompt is handed to a tokenizer. FLUX keeps at most a fixed number of tokens
 * per encoder (CLIP 77, T5 512 for dev / 256 for schnell; docs/flux-math.md §2.9, §2.10), so a
 * prompt of megabytes never needs tokenizing whole: the window is the shortest prefix holding
 * CHARS_PER_TOKEN non-whitespace characters per token that can still fit, cut back to a
 * whitespace (both tokenizers split words there, so no word is cut and the tokens inside the
 * window are those of the whole prompt). Whitespace does not count: both tokenizers collapse
 * runs of it. Text whose tokens average more than CHARS_PER_TOKEN non-whitespace characters
 * (runs of unknown symbols, not language) is cut at the window too.
 */

/** Non-whitespace characters allowed per token: real tokens are shorter (sentencepiece pieces are ≤ 16). */
export const CHARS_PER_TOKEN = 16;

export interface PromptWindow {
  text: string;
  /** Whether text was left out. */
  cut: boolean;
}

export function promptWindow(prompt: string, maxTokens: number): PromptWindow {
  const budget = CHARS_PER_TOKEN * maxTokens;
  if (prompt.length <= budget) return { text: prompt, cut: false };
  const nonSpace = /\S/g;
  for (let seen = 0; seen < budget; seen++) if (nonSpace.exec(prompt) === null) return { text: prompt, cut: false };
  const end = nonSpace.lastIndex;
  if (nonSpace.exec(prompt) === null) return { text: prompt, cut: false };
  let cut = end;
  while (cut > 0 && !/\s/.test(prompt[cut - 1] as string)) cut--;
  const words = prompt.slice(0, cut).trimEnd();
  return { text: words === '' ? prompt.slice(0, end) : words, cut: true };
}
