import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PredictionJournal } from '../../../src/server/journal.js';
import { Prediction } from '../../../src/server/prediction.js';
import { fromRecord, toRecord } from '../../../src/server/prediction-record.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('server-journal-');

describe('PredictionJournal', () => {
  it('saves a prediction as it changes and loads it back, removes it, and drops output folders nobody owns', () => {
    const dir = join(tmp(), 'roundtrip');
    const journal = new PredictionJournal(dir);
    const events = new Set(['completed'] as const);
    const prediction = new Prediction({
      id: 'p1',
      key: 'k1',
      api: 'replicate',
      input: { prompt: 'a cat' },
      model: 'o/n',
      webhook: { url: 'http://hook', events, headers: { traceparent: 't' } },
      output: { kind: 'served', base: 'http://x' },
      baseUrl: 'http://x',
      dir: join(journal.outputsDir, 'k1'),
    });
    prediction.start();
    prediction.log('Using seed: 1');
    prediction.reportProgress({ output: 0, outputs: 1, step: 1, total: 2, elapsedMs: 10 });
    prediction.succeed([{ path: join(journal.outputsDir, 'k1', 'out-0.webp'), url: 'http://x/outputs/k1/out-0.webp' }], { seed: 1 });
    journal.save(toRecord(prediction), 123, true);
    mkdirSync(join(journal.outputsDir, 'stray'));
    journal.close();

    const reopened = new PredictionJournal(dir);
    const [row] = reopened.load();
    expect(row).toMatchObject({ outputBytes: 123, webhookDue: true });
    const restored = fromRecord(row?.record as never, join(reopened.outputsDir, 'k1'));
    expect(toRecord(restored)).toEqual(toRecord(prediction));
    expect(restored.spec.webhook?.events.has('completed')).toBe(true);
    expect(restored.terminal).toBe(true);
    reopened.webhookSettled('p1');
    expect(reopened.load()[0]?.webhookDue).toBe(false);
    reopened.removeOrphans(new Set(['k1']));
    reopened.remove('p1');
    expect(reopened.load()).toEqual([]);
    reopened.close();
  });

  it('refuses a data folder another live process holds, and takes over the lock of a dead one', async () => {
    const dir = join(tmp(), 'locked');
    const holder = new PredictionJournal(dir);
    expect(() => new PredictionJournal(dir)).not.toThrow(); // the same process may reopen its own folder
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      writeFileSync(join(dir, 'server.lock'), String(other.pid));
      expect(() => new PredictionJournal(dir)).toThrow(`data folder ${dir}: in use by process ${other.pid}`);
    } finally {
      other.kill('SIGKILL');
      await new Promise((resolve) => other.once('exit', resolve));
    }
    const taken = new PredictionJournal(dir);
    taken.close();
    holder.close();
  });

  it('names the data folder and the problem when predictions.db is not a database', () => {
    const dir = join(tmp(), 'corrupt');
    mkdirSync(dir);
    writeFileSync(join(dir, 'predictions.db'), 'this is not sqlite, just text long enough to be read as a header page');
    expect(() => new PredictionJournal(dir)).toThrow(`data folder ${dir}: cannot open predictions.db: file is not a database`);
  });
});
