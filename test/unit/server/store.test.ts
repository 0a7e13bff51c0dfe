import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Prediction } from '../../../src/server/prediction.js';
import { PredictionStore } from '../../../src/server/store.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('server-store-');

function finished(id: string): Prediction {
  const dir = join(tmp(), id);
  mkdirSync(dir);
  writeFileSync(join(dir, 'out-0.webp'), 'x');
  const prediction = new Prediction({ id, key: `${id}-key`, api: 'cog', input: {}, output: { kind: 'data-uri' }, baseUrl: 'http://x', dir });
  prediction.fail('done');
  return prediction;
}

describe('PredictionStore', () => {
  it('forgets a finished prediction after the retention time and removes its folder', async () => {
    const store = new PredictionStore({ retentionMs: 50, maxRetained: 10 });
    const prediction = finished('ttl');
    store.add(prediction);
    store.retain(prediction);
    expect(store.getByKey('ttl-key')).toBe(prediction);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(store.get('ttl')).toBeUndefined();
    expect(store.getByKey('ttl-key')).toBeUndefined();
    expect(existsSync(prediction.spec.dir)).toBe(false);
  });

  it('keeps unfinished predictions and at most maxRetained finished ones, oldest dropped first', async () => {
    const store = new PredictionStore({ retentionMs: 60_000, maxRetained: 2 });
    const running = new Prediction({
      id: 'running',
      key: 'running-key',
      api: 'replicate',
      input: {},
      output: { kind: 'data-uri' },
      baseUrl: 'http://x',
      dir: join(tmp(), 'running'),
    });
    store.add(running);
    const done = ['a', 'b', 'c'].map(finished);
    for (const p of done) {
      store.add(p);
      store.retain(p);
    }
    expect([store.get('a'), store.get('b'), store.get('c'), store.get('running')].map((p) => p?.id)).toEqual([undefined, 'b', 'c', 'running']);
    expect(store.unfinished()).toEqual([running]);
    await store.clear();
    expect(existsSync(join(tmp(), 'c'))).toBe(false);
  });
});

describe('PredictionStore byte bound', () => {
  it('forgets the oldest finished predictions once their output files take more than maxRetainedBytes', async () => {
    const store = new PredictionStore({ retentionMs: 60_000, maxRetained: 10, maxRetainedBytes: 250 });
    const done = ['x', 'y', 'z'].map(finished);
    for (const p of done) {
      store.add(p);
      store.retain(p, 100);
    }
    expect(done.map((p) => store.get(p.id)?.id)).toEqual([undefined, 'y', 'z']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(existsSync(done[0]?.spec.dir as string)).toBe(false);
  });

  it('forgets at once a restored prediction that finished longer ago than the retention time', () => {
    const removed: string[] = [];
    const store = new PredictionStore({ retentionMs: 1000, maxRetained: 10 }, (p) => removed.push(p.id));
    const old = finished('old');
    old.completedAt = new Date(Date.now() - 5000);
    store.add(old);
    store.retain(old);
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        expect(store.get('old')).toBeUndefined();
        expect(removed).toEqual(['old']);
        resolve();
      }, 50),
    );
  });
});
