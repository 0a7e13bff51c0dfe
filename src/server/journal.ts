/**
 * The server's predictions on disk: an embedded SQLite database (`predictions.db`, better-sqlite3)
 * in the data folder, one row per prediction remembered (id, status, input, logs and progress,
 * metrics, timestamps, output references, webhook spec, whether its `completed` webhook is still
 * due), the output files in `outputs/<key>/` beside it. Each change is written as it happens
 * (WAL, so a write is an append), which is what lets a restarted server answer for the
 * predictions of the one before. One server at a time: a lock file holds the folder.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { PredictionRecord } from './prediction-record.js';

export class DataFolderError extends Error {
  constructor(dir: string, detail: string) {
    super(`data folder ${dir}: ${detail}`);
    this.name = 'DataFolderError';
  }
}

export interface JournalRow {
  record: PredictionRecord;
  /** Bytes of its output files. */
  outputBytes: number;
  /** Its `completed` webhook has not been delivered (nor given up) yet. */
  webhookDue: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS predictions (
  id TEXT PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL,
  api TEXT NOT NULL,
  input TEXT NOT NULL,
  spec TEXT NOT NULL,
  webhook TEXT,
  history TEXT NOT NULL,
  outputs TEXT,
  error TEXT,
  metrics TEXT,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  completed_at INTEGER,
  output_bytes INTEGER NOT NULL DEFAULT 0,
  webhook_due INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS predictions_created ON predictions (created_at);
`;

interface Row {
  id: string;
  key: string;
  status: PredictionRecord['status'];
  api: PredictionRecord['api'];
  input: string;
  spec: string;
  webhook: string | null;
  history: string;
  outputs: string | null;
  error: string | null;
  metrics: string | null;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  output_bytes: number;
  webhook_due: number;
}

const json = (value: unknown): string | null => (value === null || value === undefined ? null : JSON.stringify(value));

/** Takes the folder's lock file, or says which live process holds it (a stale lock is taken over). */
function lock(dir: string): string {
  const path = join(dir, 'server.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return path;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new DataFolderError(dir, (error as Error).message);
      const pid = Number(readFileSync(path, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new DataFolderError(dir, `in use by process ${pid} (one server per data folder; pass another --data-dir)`);
      }
      rmSync(path, { force: true });
    }
  }
  throw new DataFolderError(dir, 'cannot take its lock file');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class PredictionJournal {
  /** Where the output folders live (one per prediction key). */
  readonly outputsDir: string;
  private readonly db: Database.Database;
  private readonly lockPath: string;
  private readonly upsert: Database.Statement;
  private readonly removal: Database.Statement;
  private readonly due: Database.Statement;

  constructor(readonly dir: string) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (error) {
      throw new DataFolderError(dir, (error as Error).message);
    }
    this.lockPath = lock(dir);
    this.outputsDir = join(dir, 'outputs');
    try {
      mkdirSync(this.outputsDir, { recursive: true });
      this.db = new Database(join(dir, 'predictions.db'));
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(SCHEMA);
    } catch (error) {
      rmSync(this.lockPath, { force: true });
      throw new DataFolderError(dir, `cannot open predictions.db: ${(error as Error).message}`);
    }
    this.upsert = this.db.prepare(`
      INSERT INTO predictions (id, key, status, api, input, spec, webhook, history, outputs, error, metrics, created_at, started_at, completed_at, output_bytes, webhook_due)
      VALUES (@id, @key, @status, @api, @input, @spec, @webhook, @history, @outputs, @error, @metrics, @created_at, @started_at, @completed_at, @output_bytes, @webhook_due)
      ON CONFLICT (id) DO UPDATE SET status = excluded.status, history = excluded.history, outputs = excluded.outputs, error = excluded.error,
        metrics = excluded.metrics, started_at = excluded.started_at, completed_at = excluded.completed_at,
        output_bytes = excluded.output_bytes, webhook_due = excluded.webhook_due`);
    this.removal = this.db.prepare('DELETE FROM predictions WHERE id = ?');
    this.due = this.db.prepare('UPDATE predictions SET webhook_due = ? WHERE id = ?');
  }

  /** Writes the prediction's current state. */
  save(record: PredictionRecord, outputBytes: number, webhookDue: boolean): void {
    const { id, key, status, api, input, webhook, history, outputs, error, metrics, model, version, output, baseUrl } = record;
    this.upsert.run({
      id,
      key,
      status,
      api,
      input: JSON.stringify(input),
      spec: JSON.stringify({ model, version, output, baseUrl }),
      webhook: json(webhook),
      history: JSON.stringify(history),
      outputs: json(outputs),
      error,
      metrics: json(metrics),
      created_at: record.createdAt,
      started_at: record.startedAt,
      completed_at: record.completedAt,
      output_bytes: outputBytes,
      webhook_due: webhookDue ? 1 : 0,
    });
  }

  /** The `completed` webhook was delivered or given up. */
  webhookSettled(id: string): void {
    this.due.run(0, id);
  }

  remove(id: string): void {
    this.removal.run(id);
  }

  /** Every prediction saved, oldest first. */
  load(): JournalRow[] {
    const rows = this.db.prepare('SELECT * FROM predictions ORDER BY created_at, rowid').all() as Row[];
    return rows.map((row) => {
      const spec = JSON.parse(row.spec) as Pick<PredictionRecord, 'model' | 'version' | 'output' | 'baseUrl'>;
      const record: PredictionRecord = {
        id: row.id,
        key: row.key,
        api: row.api,
        input: JSON.parse(row.input) as unknown,
        ...spec,
        ...(row.webhook === null ? {} : { webhook: JSON.parse(row.webhook) as PredictionRecord['webhook'] }),
        status: row.status,
        createdAt: row.created_at,
        startedAt: row.started_at,
        completedAt: row.completed_at,
        history: JSON.parse(row.history) as PredictionRecord['history'],
        outputs: row.outputs === null ? null : (JSON.parse(row.outputs) as PredictionRecord['outputs']),
        error: row.error,
        metrics: row.metrics === null ? null : (JSON.parse(row.metrics) as PredictionRecord['metrics']),
      };
      return { record, outputBytes: row.output_bytes, webhookDue: row.webhook_due === 1 };
    });
  }

  /** Removes output folders no saved prediction owns (left by a run the last process did not finish). */
  removeOrphans(keys: ReadonlySet<string>): void {
    for (const name of readdirSync(this.outputsDir)) {
      if (!keys.has(name)) rmSync(join(this.outputsDir, name), { recursive: true, force: true });
    }
  }

  close(): void {
    this.db.close();
    rmSync(this.lockPath, { force: true });
  }
}
