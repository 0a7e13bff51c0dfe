/**
 * Denoising progress as the tqdm lines the reference implementations print into their logs,
 * e.g. ` 50%|█████     | 14/28 [00:01<00:01, 10.00it/s]`: the Replicate client's
 * parseProgressFromLogs() reads the percentage and the step counts back out of them.
 */
import type { Progress } from '../predictor/predictor.js';

const BAR_WIDTH = 10;

function clock(seconds: number): string {
  const s = Math.round(seconds);
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function progressLine(p: Progress): string {
  const fraction = p.total > 0 ? p.step / p.total : 1;
  const filled = Math.floor(fraction * BAR_WIDTH);
  const bar = '█'.repeat(filled) + ' '.repeat(BAR_WIDTH - filled);
  const elapsed = p.elapsedMs / 1000;
  const perSecond = elapsed > 0 ? p.step / elapsed : 0;
  const remaining = perSecond > 0 ? clock((p.total - p.step) / perSecond) : '?';
  const rate = perSecond === 0 ? '?it/s' : perSecond >= 1 ? `${perSecond.toFixed(2)}it/s` : `${(1 / perSecond).toFixed(2)}s/it`;
  const percent = String(Math.round(fraction * 100)).padStart(3);
  return `${percent}%|${bar}| ${p.step}/${p.total} [${clock(elapsed)}<${remaining}, ${rate}]`;
}
