import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError, readCheckpointConfig, type CheckpointConfigSources, type ConfigOrigin } from '../../../src/models/common/checkpoint.js';
import { openSafetyCheckpoint, SafetyCheckpointError, type SafetyModelKind } from '../../../src/models/safety/checkpoint.js';
import { writeSafetensors } from '../../../src/weights/safetensors-writer.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('checkpoint-config-');

class TestCheckpointError extends CheckpointError {}

interface Found {
  from: string;
  origin: ConfigOrigin | 'inferred';
  raw?: Record<string, unknown>;
}

/** A folder holding `files` (name → text), made fresh for each case. */
function folderWith(name: string, files: Record<string, string>): string {
  const folder = join(tmp(), name);
  mkdirSync(folder);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(folder, file), text);
  return folder;
}

function read(sources: Pick<CheckpointConfigSources<Found>, 'folder' | 'metadata'>) {
  return readCheckpointConfig<Found>({
    path: '/ckpt/model.safetensors',
    ...sources,
    parse: (from, raw, origin) => ({ from, origin, raw }),
    infer: () => ({ from: '/ckpt/model.safetensors', origin: 'inferred' }),
    error: TestCheckpointError,
  });
}

const METADATA = { format: 'pt', config: '{"source":"metadata"}' };

describe('readCheckpointConfig', () => {
  it('takes config.json over the metadata, the metadata over the shapes, and says which file it read', () => {
    const folder = folderWith('precedence', { 'config.json': '{"source":"config.json"}' });
    const configFile = join(folder, 'config.json');
    expect(read({ folder, metadata: METADATA })).toEqual({ config: { from: configFile, origin: 'config.json', raw: { source: 'config.json' } }, configFile });
    const empty = folderWith('no-config', {});
    const fromMetadata = { config: { from: '/ckpt/model.safetensors', origin: 'metadata', raw: { source: 'metadata' } }, configFile: null };
    expect(read({ folder: empty, metadata: METADATA })).toEqual(fromMetadata);
    expect(read({ folder: null, metadata: METADATA })).toEqual(fromMetadata);
    const inferred = { config: { from: '/ckpt/model.safetensors', origin: 'inferred' }, configFile: null };
    expect(read({ folder: empty, metadata: { format: 'pt' } })).toEqual(inferred);
    expect(read({ folder: null, metadata: {} })).toEqual(inferred);
  });

  it("rejects a malformed config.json with the loader's error naming the file, without falling back", () => {
    const broken = folderWith('broken', { 'config.json': '{"hidden_size": 32,' });
    const configFile = join(broken, 'config.json');
    expect(() => read({ folder: broken, metadata: METADATA })).toThrow(TestCheckpointError);
    expect(() => read({ folder: broken, metadata: METADATA })).toThrow(new RegExp(`^${literal(configFile)}: config is not valid JSON: `));
    const list = folderWith('list', { 'config.json': '[1, 2]' });
    expect(() => read({ folder: list, metadata: METADATA })).toThrow(new TestCheckpointError(join(list, 'config.json'), 'config is not a JSON object'));
    const unreadable = folderWith('unreadable', {});
    mkdirSync(join(unreadable, 'config.json'));
    expect(() => read({ folder: unreadable, metadata: METADATA })).toThrow(
      new RegExp(`^${literal(join(unreadable, 'config.json'))}: cannot read config: EISDIR`),
    );
  });

  it('rejects malformed `config` metadata naming the checkpoint', () => {
    expect(() => read({ folder: null, metadata: { config: 'not json' } })).toThrow(/^\/ckpt\/model\.safetensors: the "config" metadata is not valid JSON: /);
    expect(() => read({ folder: null, metadata: { config: '"a string"' } })).toThrow(
      new TestCheckpointError('/ckpt/model.safetensors', 'the "config" metadata is not a JSON object'),
    );
  });
});

describe('safety checkpoints use the shared config reading', () => {
  const kind: SafetyModelKind<{ width: number }> = {
    label: 'test model',
    subfolder: 'test_model',
    marker: 'weight',
    ignored: [],
    fromConfig: (_source, raw) => ({ width: raw.width as number }),
    infer: (_source, tensors) => ({ width: tensors.info('weight').shape[0] as number }),
    expected: (config) => new Map([['weight', [config.width]]]),
  };

  it('reads a config.json beside a single file before its metadata', async () => {
    const folder = folderWith('safety-single', { 'config.json': '{"width": 4}' });
    const file = join(folder, 'weights.safetensors');
    await writeSafetensors(file, [{ name: 'weight', dtype: 'F32', shape: [4], data: new Float32Array(4) }], { config: '{"width": 3}' });
    const checkpoint = await openSafetyCheckpoint(file, kind);
    expect({ config: checkpoint.config, configFile: checkpoint.configFile }).toEqual({ config: { width: 4 }, configFile: join(folder, 'config.json') });
    writeFileSync(join(folder, 'config.json'), '{"width": 4');
    await expect(openSafetyCheckpoint(file, kind)).rejects.toThrow(SafetyCheckpointError);
    await expect(openSafetyCheckpoint(file, kind)).rejects.toThrow(new RegExp(`^${literal(join(folder, 'config.json'))}: config is not valid JSON: `));
  });
});

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
