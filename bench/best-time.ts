/** The shortest of `runs` timed calls of `fn` in milliseconds, after one untimed warm-up call (shader compilation, prepacking, arena growth). */
export async function bestTime(runs: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await fn();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}
