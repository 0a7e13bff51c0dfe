/**
 * The LoRA download cache against local fakes of HuggingFace, CivitAI, Replicate and a plain file
 * server: every source's happy path, HTTP and network faults, hostile archives, the address rule,
 * LRU eviction under a size cap, the index surviving a restart, shared concurrent downloads,
 * cancellation, local paths, and tokens sent as headers but never logged.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraCache, LoraSourceError } from '../../../src/lora/cache.js';
import type { LoraCacheOptions } from '../../../src/lora/cache-policy.js';
import { RunCancelledError } from '../../../src/onnx/errors.js';
import { FakeLoraHosts, makeSafetensors, makeTar } from '../../helpers/fake-lora-hosts.js';
import { tarBomb } from '../../helpers/hostile-files.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const TOKENS = { replicate: 'r8_SECRET_replicate', huggingface: 'hf_SECRET_huggingface', civitai: 'civ_SECRET_civitai' };
const tempRoot = useTempDir('lora-cache-');

let fake: FakeLoraHosts;
let A: Uint8Array;
let B: Uint8Array;
let C: Uint8Array;
let D: Uint8Array;

beforeAll(async () => {
  fake = await FakeLoraHosts.start();
  [A, B, C, D] = await Promise.all([makeSafetensors(1), makeSafetensors(2), makeSafetensors(3), makeSafetensors(4)]);
  fake.replicateWeights.set(
    'fofr/flux-mona-lisa',
    makeTar([
      { path: 'output/config.yaml', data: Buffer.from('a: 1') },
      { path: 'output/flux_train_replicate/lora.safetensors', data: A },
    ]),
  );
  fake.replicateWeights.set('fofr/flux-mona-lisa/abc123', makeTar([{ path: 'lora.safetensors', data: B }]));
  fake.hfRepos.set(
    'alice/tarot',
    new Map([
      ['README.md', Buffer.from('# tarot')],
      ['lora.safetensors', A],
    ]),
  );
  fake.hfRepos.set(
    'alice/two',
    new Map([
      ['a.safetensors', A],
      ['sub/b.safetensors', B],
    ]),
  );
  fake.civitaiModels.set('12345', ['700', '600']);
  fake.civitaiFiles.set('700', C);
  fake.civitaiFiles.set('600', D);
  for (const [path, body] of [
    ['/a.safetensors', A],
    ['/b.safetensors', B],
    ['/c.safetensors', C],
    ['/d.safetensors', D],
  ] as const)
    fake.files.set(path, { body });
});

afterAll(async () => {
  await fake.close();
});

let dirCount = 0;
async function freshDir(): Promise<string> {
  const dir = join(tempRoot(), `cache-${dirCount++}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

interface Harness {
  cache: LoraCache;
  dir: string;
  logs: string[];
}

async function harness(options: Partial<LoraCacheOptions> = {}, dir?: string): Promise<Harness> {
  const logs: string[] = [];
  const cacheDir = dir ?? (await freshDir());
  const cache = new LoraCache({
    dir: cacheDir,
    hosts: fake.hosts,
    tokens: TOKENS,
    allowPrivateNetworks: true,
    timeoutMs: 5000,
    log: (line) => logs.push(line),
    ...options,
  });
  return { cache, dir: cacheDir, logs };
}

/** The cache folder's files other than the index (no partial downloads may be among them). */
async function cachedFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name !== 'index.json').sort();
}

async function expectFailure(promise: Promise<unknown>, input: string, message: RegExp): Promise<LoraSourceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LoraSourceError);
  expect((error as LoraSourceError).input).toBe(input);
  expect((error as Error).message.startsWith(`input "${input}": `)).toBe(true);
  expect((error as Error).message).toMatch(message);
  return error as LoraSourceError;
}

const url = (path: string): string => `${fake.urls.files}${path}`;

describe('LoraCache sources', () => {
  it('Replicate: _weights redirects to a tar; the token goes to Replicate only; spellings share one entry', async () => {
    const { cache, dir, logs } = await harness();
    const before = fake.requests.length;
    const path = await cache.fetch('replicate_weights', 'fofr/flux-mona-lisa');
    expect(new Uint8Array(await readFile(path))).toEqual(A);
    expect(dirname(path)).toBe(dir);
    expect(path).toMatch(/[0-9a-f]{32}\.safetensors$/);
    const seen = fake.requests.slice(before);
    expect(seen.map((r) => `${r.host} ${r.path}`)).toEqual([
      'replicate /fofr/flux-mona-lisa/_weights',
      'files /delivery/fofr/flux-mona-lisa/trained_model.tar?signature=abc',
    ]);
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${TOKENS.replicate}`);
    expect(seen[1]?.headers.authorization).toBeUndefined();
    expect(logs[0]).toBe('Downloading weights');
    expect(logs[1]).toBe(`downloading weights from ${fake.urls.replicate}/fofr/flux-mona-lisa/_weights`);
    expect(logs[2]).toMatch(/^Downloaded weights in \d+\.\d\ds$/);

    // Other spellings of the same model resolve to the same download URL: no new request.
    const count = fake.requests.length;
    expect(await cache.fetch('extra_lora', 'https://replicate.com/fofr/flux-mona-lisa')).toBe(path);
    expect(await cache.fetch('extra_lora', 'replicate.com/fofr/flux-mona-lisa/')).toBe(path);
    expect(fake.requests.length).toBe(count);

    const version = await cache.fetch('replicate_weights', 'fofr/flux-mona-lisa/versions/abc123');
    expect(new Uint8Array(await readFile(version))).toEqual(B);
    expect(fake.requests.at(-2)?.path).toBe('/fofr/flux-mona-lisa/versions/abc123/_weights');
    expect(await cachedFiles(dir)).toHaveLength(2);
  });

  it('HuggingFace: lists the repo for its one .safetensors file, or fetches the named one, with the HF token', async () => {
    const { cache } = await harness();
    const before = fake.requests.length;
    const path = await cache.fetch('replicate_weights', 'huggingface.co/alice/tarot');
    expect(new Uint8Array(await readFile(path))).toEqual(A);
    const seen = fake.requests.slice(before);
    expect(seen.map((r) => r.path)).toEqual(['/api/models/alice/tarot', '/alice/tarot/resolve/main/lora.safetensors']);
    for (const r of seen) expect(r.headers.authorization).toBe(`Bearer ${TOKENS.huggingface}`);

    // The resolve URL and the named-file form are the same entry.
    const count = fake.requests.length;
    expect(await cache.fetch('extra_lora', 'https://huggingface.co/alice/tarot/resolve/main/lora.safetensors')).toBe(path);
    expect(await cache.fetch('extra_lora', 'https://huggingface.co/alice/tarot/lora.safetensors')).toBe(path);
    expect(fake.requests.length).toBe(count);

    const named = await cache.fetch('extra_lora', 'https://huggingface.co/alice/two/resolve/main/sub/b.safetensors');
    expect(new Uint8Array(await readFile(named))).toEqual(B);
  });

  it('HuggingFace: a repo with several .safetensors files and no file named gives the reference message', async () => {
    const { cache, dir } = await harness();
    await expectFailure(
      cache.fetch('replicate_weights', 'huggingface.co/alice/two'),
      'replicate_weights',
      /Failed to download from HuggingFace: No \*\.safetensors file was explicitly specified from the HuggingFace repo alice\/two and more than one \*\.safetensors file was found\. Found: \['a\.safetensors', 'sub\/b\.safetensors'\]/,
    );
    expect(await cachedFiles(dir)).toEqual([]);
  });

  it('CivitAI: a model page resolves to the newest version, modelVersionId wins, download URLs are kept', async () => {
    const { cache, logs } = await harness();
    let before = fake.requests.length;
    const newest = await cache.fetch('replicate_weights', 'https://civitai.com/models/12345/some-name');
    expect(new Uint8Array(await readFile(newest))).toEqual(C);
    const seen = fake.requests.slice(before);
    expect(seen.map((r) => r.path)).toEqual(['/api/v1/models/12345', '/api/download/models/700?type=Model&format=SafeTensor']);
    for (const r of seen) expect(r.headers.authorization).toBe(`Bearer ${TOKENS.civitai}`);

    const pinned = await cache.fetch('replicate_weights', 'civitai.com/models/12345?modelVersionId=600');
    expect(new Uint8Array(await readFile(pinned))).toEqual(D);

    // A download URL carrying its own token: sent as given, never logged, not part of the key.
    before = fake.requests.length;
    const direct = await cache.fetch('extra_lora', 'https://civitai.com/api/download/models/700?type=Model&format=SafeTensor&token=USER_SECRET');
    expect(direct).toBe(newest);
    expect(fake.requests.length).toBe(before);
    const other = await cache.fetch('extra_lora', 'https://civitai.com/api/download/models/600?token=USER_SECRET');
    expect(new Uint8Array(await readFile(other))).toEqual(D);
    expect(fake.requests.at(-1)?.path).toBe('/api/download/models/600?token=USER_SECRET');
    expect(logs.join('\n')).not.toMatch(/SECRET/);
  });

  it('plain .safetensors and .tar URLs (query strings allowed, gzip tars too)', async () => {
    const { cache } = await harness();
    expect(new Uint8Array(await readFile(await cache.fetch('replicate_weights', url('/b.safetensors?sig=abc&exp=1'))))).toEqual(B);
    expect(fake.requests.at(-1)?.headers.authorization).toBeUndefined();
    fake.files.set('/weights.tar', {
      body: makeTar([
        { path: 'x/y/only.safetensors', data: C },
        { path: 'x/notes.txt', data: Buffer.from('hi') },
      ]),
    });
    expect(new Uint8Array(await readFile(await cache.fetch('replicate_weights', url('/weights.tar'))))).toEqual(C);
    fake.files.set('/weights.tar.gz', { body: gzipSync(makeTar([{ path: 'only.safetensors', data: D }])) });
    expect(new Uint8Array(await readFile(await cache.fetch('replicate_weights', url('/weights.tar.gz'))))).toEqual(D);
  });

  it('data URIs: a tar holding one .safetensors, or a .safetensors file itself', async () => {
    const { cache, logs } = await harness();
    const tarUri = `data:application/x-tar;base64,${Buffer.from(makeTar([{ path: 'dir/lora.safetensors', data: A }])).toString('base64')}`;
    const fromTar = await cache.fetch('replicate_weights', tarUri);
    expect(new Uint8Array(await readFile(fromTar))).toEqual(A);
    expect(logs).toContain('downloading weights from data URI');
    const raw = await cache.fetch('extra_lora', `data:application/octet-stream;base64,${Buffer.from(B).toString('base64')}`);
    expect(new Uint8Array(await readFile(raw))).toEqual(B);
    expect(await cache.fetch('replicate_weights', tarUri)).toBe(fromTar);

    const none = `data:application/x-tar;base64,${Buffer.from(makeTar([{ path: 'a.txt', data: Buffer.from('x') }])).toString('base64')}`;
    await expectFailure(cache.fetch('replicate_weights', none), 'replicate_weights', /data URI of \d+ characters: No \.safetensors file found in data URI$/);
    const two = `data:application/x-tar;base64,${Buffer.from(
      makeTar([
        { path: 'a.safetensors', data: A },
        { path: 'b/b.safetensors', data: B },
      ]),
    ).toString('base64')}`;
    await expectFailure(cache.fetch('replicate_weights', two), 'replicate_weights', /Multiple \.safetensors files found in data URI/);
    await expectFailure(cache.fetch('replicate_weights', 'data:text/plain,hello'), 'replicate_weights', /must be base64/);
  });
});

describe('LoraCache faults: a clear error naming the input, no partial file, and the next fetch works', () => {
  const goodTar = (): Uint8Array => makeTar([{ path: 'ok.safetensors', data: A }]);
  const cases: [string, () => void, string, RegExp, Partial<LoraCacheOptions>?][] = [
    [
      '401',
      () => fake.files.set('/f401.safetensors', { status: 401 }),
      'FILES/f401.safetensors',
      /Authorization to download weights failed\. Please check to see if an API key is needed and if so pass in with the URL\./,
    ],
    ['403', () => fake.files.set('/f403.safetensors', { status: 403 }), 'FILES/f403.safetensors', /Authorization to download weights failed.*HTTP 403/],
    ['404 (plain)', () => undefined, 'FILES/missing.safetensors', /: Weights not found at the supplied URL\. Please check the URL\.$/],
    ['404 (HuggingFace repo)', () => undefined, 'huggingface.co/alice/nope', /Failed to download from HuggingFace: Weights not found at the supplied URL/],
    [
      '404 (HuggingFace file)',
      () => undefined,
      'https://huggingface.co/alice/tarot/missing.safetensors',
      /Failed to download from HuggingFace: Weights not found/,
    ],
    ['404 (CivitAI model)', () => undefined, 'https://civitai.com/models/999', /Model not found on CivitAI at that URL\. Double check the CivitAI model ID/],
    ['404 (CivitAI version)', () => undefined, 'https://civitai.com/api/download/models/424242', /Model not found on CivitAI at that URL/],
    ['404 (Replicate)', () => undefined, 'nobody/nothing', /nobody\/nothing: Weights not found at the supplied URL/],
    [
      '500',
      () => fake.files.set('/f500.safetensors', { status: 500 }),
      'FILES/f500.safetensors',
      /Failed to download safetensors file: HTTP 500 Internal Server Error \(http:\/\/127\.0\.0\.1:\d+\/f500\.safetensors\)/,
    ],
    [
      'timeout',
      () => fake.files.set('/hang.safetensors', { hang: true }),
      'FILES/hang.safetensors',
      /Failed to download safetensors file: timed out after 300 ms/,
      { timeoutMs: 300 },
    ],
    [
      'stalled host (accepts, then sends nothing)',
      () => fake.files.set('/stalled.safetensors', { hang: true }),
      'FILES/stalled.safetensors',
      /Failed to download safetensors file: stalled: no data for 300 ms \(http:\/\/127\.0\.0\.1:\d+\/stalled\.safetensors\)/,
      { idleTimeoutMs: 300 },
    ],
    [
      'connection dropped mid-body',
      () => fake.files.set('/drop.safetensors', { body: new Uint8Array(100_000), dropAfter: 1000 }),
      'FILES/drop.safetensors',
      /Failed to download safetensors file: (download failed: |connection closed after)/,
    ],
    ['oversize', () => undefined, 'FILES/a.safetensors', /exceeds the 100-byte limit/, { maxDownloadBytes: 100 }],
    // A small gzip tar whose entry inflates past the cap: refused from its header, before it is written.
    [
      'oversize tar entry',
      () => fake.files.set('/big-entry.tar.gz', { body: gzipSync(makeTar([{ path: 'x.safetensors', data: new Uint8Array(200_000) }])) }),
      'FILES/big-entry.tar.gz',
      /tarball entry "x\.safetensors" is 200000 bytes, over the 5000-byte limit/,
      { maxDownloadBytes: 5000 },
    ],
    // Archive bombs: ~8 KB of gzip that inflates 1000× and more; node-tar's ratio guard stops it and the
    // extraction fails promptly (it once hung with the entry's file open).
    [
      'gzip tar bomb (URL)',
      () => fake.files.set('/bomb.tar.gz', { body: tarBomb() }),
      'FILES/bomb.tar.gz',
      /Failed to read tarball: max decompression ratio exceeded/,
    ],
    ['gzip tar bomb (data URI)', () => undefined, 'BOMB_DATA_URI', /Failed to read data URI: max decompression ratio exceeded/],
    [
      'tar without .safetensors',
      () => fake.files.set('/none.tar', { body: makeTar([{ path: 'a.txt', data: Buffer.from('x') }]) }),
      'FILES/none.tar',
      /No \.safetensors file found in tarball$/,
    ],
    [
      'tar with two .safetensors',
      () =>
        fake.files.set('/two.tar', {
          body: makeTar([
            { path: 'a.safetensors', data: A },
            { path: 'b/b.safetensors', data: B },
          ]),
        }),
      'FILES/two.tar',
      /Multiple \.safetensors files found in tarball/,
    ],
    [
      'tar entry escaping its folder',
      () => fake.files.set('/evil.tar', { body: makeTar([{ path: '../../evil.safetensors', data: A }]) }),
      'FILES/evil.tar',
      /tarball entry "\.\.\/\.\.\/evil\.safetensors" has an unsafe path/,
    ],
    [
      'tar with an absolute entry',
      () => fake.files.set('/abs.tar', { body: makeTar([{ path: '/tmp/abs-evil.safetensors', data: A }]) }),
      'FILES/abs.tar',
      /unsafe path/,
    ],
    ['not a tar', () => fake.files.set('/junk.tar', { body: Buffer.from('<html>not a tar</html>'.repeat(40)) }), 'FILES/junk.tar', /Failed to read tarball/],
    [
      'not a safetensors body',
      () => fake.files.set('/html.safetensors', { body: Buffer.from('<!doctype html><title>Sign in</title>') }),
      'FILES/html.safetensors',
      /the downloaded file is not a safetensors file: its first 8 bytes give a header length of \d+, above the 104857600-byte cap/,
    ],
    ['redirect loop', () => fake.files.set('/loop.safetensors', { redirect: '/loop.safetensors' }), 'FILES/loop.safetensors', /too many redirects/],
    [
      'private address refused',
      () => undefined,
      'FILES/a.safetensors',
      /127\.0\.0\.1 is a private, loopback or link-local address, which is not allowed/,
      { allowPrivateNetworks: false },
    ],
    [
      'a host that resolves to loopback',
      () => undefined,
      'LOCALHOST/a.safetensors',
      /localhost.*private, loopback or link-local address/,
      { allowPrivateNetworks: false },
    ],
  ];

  /** Case values name the files host by placeholder: its port is known only once it runs. */
  const expand = (value: string): string =>
    value
      .replace(/^BOMB_DATA_URI$/, `data:application/gzip;base64,${Buffer.from(tarBomb()).toString('base64')}`)
      .replace(/^FILES/, fake.urls.files)
      .replace(/^LOCALHOST/, `http://localhost:${new URL(fake.urls.files).port}`);

  it.each(cases)('%s', async (_name, setup, template, message, options = {}) => {
    setup();
    const value = expand(template);
    const { cache, dir, logs } = await harness(options);
    const before = fake.requests.length;
    await expectFailure(cache.fetch('extra_lora', value), 'extra_lora', message);
    expect(await cachedFiles(dir)).toEqual([]);
    if (options.allowPrivateNetworks === false) expect(fake.requests.length).toBe(before);
    expect(logs.join('\n')).not.toMatch(/SECRET/);
    // The cache still works afterwards (over the same rules).
    fake.files.set('/good.tar', { body: goodTar() });
    if (options.allowPrivateNetworks !== false && options.maxDownloadBytes === undefined) {
      expect(new Uint8Array(await readFile(await cache.fetch('extra_lora', url('/good.tar'))))).toEqual(A);
      expect(await cachedFiles(dir)).toHaveLength(1);
    }
  });

  it('nothing from a hostile archive is written outside the cache folder', async () => {
    const { cache, dir } = await harness();
    fake.files.set('/evil2.tar', { body: makeTar([{ path: 'ok/../../../evil2.safetensors', data: A }]) });
    await expectFailure(cache.fetch('replicate_weights', url('/evil2.tar')), 'replicate_weights', /unsafe path/);
    for (const folder of [dir, dirname(dir), dirname(dirname(dir)), dirname(dirname(dirname(dir)))]) {
      expect(existsSync(join(folder, 'evil2.safetensors'))).toBe(false);
      expect(existsSync(join(folder, 'evil.safetensors'))).toBe(false);
    }
    expect(existsSync('/tmp/abs-evil.safetensors')).toBe(false);
  });

  it('401 from a host with a token names the token setting', async () => {
    const { cache } = await harness({ tokens: { ...TOKENS, huggingface: 'hf_SECRET_wrong' } });
    fake.requiredTokens.huggingface = TOKENS.huggingface;
    try {
      const error = await expectFailure(
        cache.fetch('replicate_weights', 'huggingface.co/alice/tarot'),
        'replicate_weights',
        /Failed to download from HuggingFace: Authorization to download weights failed.*HF_TOKEN/,
      );
      expect(error.message).not.toMatch(/SECRET/);
      expect(fake.requests.at(-1)?.headers.authorization).toBe('Bearer hf_SECRET_wrong');
    } finally {
      delete fake.requiredTokens.huggingface;
    }
  });

  it('cancellation stops the download and leaves nothing behind', async () => {
    const { cache, dir } = await harness();
    fake.files.set('/slow.safetensors', { hang: true });
    const controller = new AbortController();
    const pending = cache.fetch('replicate_weights', url('/slow.safetensors'), controller.signal);
    setTimeout(() => controller.abort(), 50);
    await expect(pending).rejects.toBeInstanceOf(RunCancelledError);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await cachedFiles(dir)).toEqual([]);
    await expect(cache.fetch('replicate_weights', url('/a.safetensors'), AbortSignal.abort())).rejects.toBeInstanceOf(RunCancelledError);
  });
});

describe('LoraCache storage', () => {
  it('evicts least recently used entries past the size cap, sparing the entry fetched before', async () => {
    const size = A.byteLength;
    const { cache, dir, logs } = await harness({ maxBytes: 2 * size });
    const a = await cache.fetch('replicate_weights', url('/a.safetensors'));
    const b = await cache.fetch('replicate_weights', url('/b.safetensors'));
    expect(await cache.fetch('replicate_weights', url('/a.safetensors'))).toBe(a); // A is now the most recent
    const c = await cache.fetch('extra_lora', url('/c.safetensors'));
    expect(existsSync(b)).toBe(false);
    expect(existsSync(a)).toBe(true);
    expect(existsSync(c)).toBe(true);
    expect(logs).toContain(`removing oldest ${b}`);
    expect(await cachedFiles(dir)).toHaveLength(2);
    // B comes back with a download; the oldest (A) goes, C (fetched just before) stays.
    const before = fake.count('files', '/b.safetensors');
    expect(await cache.fetch('replicate_weights', url('/b.safetensors'))).toBe(b);
    expect(fake.count('files', '/b.safetensors')).toBe(before + 1);
    expect(existsSync(a)).toBe(false);
    expect(existsSync(c)).toBe(true);
  });

  it('survives a restart: files and LRU order are reused without downloading', async () => {
    const size = A.byteLength;
    const first = await harness({ maxBytes: 10 * size });
    const a = await first.cache.fetch('replicate_weights', url('/a.safetensors'));
    const b = await first.cache.fetch('replicate_weights', url('/b.safetensors'));
    await first.cache.fetch('replicate_weights', url('/a.safetensors')); // order now: B (oldest), A
    const index = JSON.parse(await readFile(join(first.dir, 'index.json'), 'utf8')) as { entries: { key: string; file: string; size: number }[] };
    expect(index.entries.map((e) => e.key)).toEqual([url('/b.safetensors'), url('/a.safetensors')]);
    expect(index.entries.every((e) => e.size === size)).toBe(true);

    const requests = fake.requests.length;
    const second = await harness({ maxBytes: 2 * size }, first.dir);
    // C is added: the cap holds two, so the oldest by the saved order (B, not the first downloaded A) goes.
    const c = await second.cache.fetch('replicate_weights', url('/c.safetensors'));
    expect(fake.requests.length).toBe(requests + 1);
    expect(existsSync(b)).toBe(false);
    expect(existsSync(a)).toBe(true);
    expect(await second.cache.fetch('replicate_weights', url('/a.safetensors'))).toBe(a);
    expect(await second.cache.fetch('replicate_weights', url('/c.safetensors'))).toBe(c);
    expect(fake.requests.length).toBe(requests + 1);
  });

  it('downloads one LoRA once for concurrent fetches', async () => {
    const { cache } = await harness();
    const before = fake.count('files', '/d.safetensors');
    const beforeHf = fake.count('huggingface', '/alice/tarot/resolve/');
    const paths = await Promise.all([
      cache.fetch('replicate_weights', url('/d.safetensors')),
      cache.fetch('extra_lora', url('/d.safetensors')),
      cache.fetch('replicate_weights', url('/d.safetensors')),
      cache.fetch('replicate_weights', 'huggingface.co/alice/tarot'),
      cache.fetch('extra_lora', 'https://huggingface.co/alice/tarot/lora.safetensors'),
    ]);
    expect(new Set(paths.slice(0, 3)).size).toBe(1);
    expect(paths[3]).toBe(paths[4]);
    expect(fake.count('files', '/d.safetensors')).toBe(before + 1);
    expect(fake.count('huggingface', '/alice/tarot/resolve/')).toBe(beforeHf + 1);
  });

  it('a caller that cancels does not cancel the download for the others', async () => {
    const { cache } = await harness();
    fake.files.set('/shared.safetensors', { body: B, delayMs: 150 });
    const controller = new AbortController();
    const leaving = cache.fetch('replicate_weights', url('/shared.safetensors'), controller.signal);
    const staying = cache.fetch('extra_lora', url('/shared.safetensors'));
    await new Promise((resolve) => setTimeout(resolve, 30));
    controller.abort();
    await expect(leaving).rejects.toBeInstanceOf(RunCancelledError);
    // The shared download goes on for the caller still waiting.
    expect(new Uint8Array(await readFile(await staying))).toEqual(B);
    expect(fake.count('files', '/shared.safetensors')).toBe(1);
  });

  it('removes files its index does not list and stale partial downloads on start; tolerates a damaged index', async () => {
    const dir = await freshDir();
    const orphan = join(dir, `${'0'.repeat(32)}.safetensors`);
    const stale = join(dir, '.partial-1-abc.safetensors');
    const fresh = join(dir, '.partial-1-def.safetensors');
    await writeFile(orphan, A);
    await writeFile(stale, 'x');
    await writeFile(fresh, 'x');
    await utimes(stale, new Date(0), new Date(0));
    await writeFile(join(dir, 'index.json'), '{not json');
    const { cache, logs } = await harness({}, dir);
    await cache.fetch('replicate_weights', url('/a.safetensors'));
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(logs.some((l) => l.startsWith('LoRA cache index unreadable'))).toBe(true);
  });

  it('an entry whose file was deleted is downloaded again', async () => {
    const { cache } = await harness();
    const path = await cache.fetch('replicate_weights', url('/c.safetensors'));
    const { rm } = await import('node:fs/promises');
    await rm(path);
    expect(await cache.fetch('replicate_weights', url('/c.safetensors'))).toBe(path);
    expect(existsSync(path)).toBe(true);
  });
});

describe('LoraCache local paths', () => {
  it('are refused unless the operator sets a LoRA folder, and must stay inside it', async () => {
    const root = await mkdtemp(join(tempRoot(), 'loras-'));
    const outside = await mkdtemp(join(tempRoot(), 'outside-'));
    await writeFile(join(root, 'mine.safetensors'), A);
    await writeFile(join(root, 'bad.safetensors'), 'not safetensors at all');
    await writeFile(join(outside, 'secret.safetensors'), B);
    await symlink(join(outside, 'secret.safetensors'), join(root, 'link.safetensors'));

    const refused = await harness();
    await expectFailure(
      refused.cache.fetch('replicate_weights', join(root, 'mine.safetensors')),
      'replicate_weights',
      /local paths are not allowed on this server/,
    );

    const { cache } = await harness({ localRoot: root });
    expect(await cache.fetch('replicate_weights', join(root, 'mine.safetensors'))).toBe(join(root, 'mine.safetensors'));
    expect(await cache.fetch('replicate_weights', './mine.safetensors')).toBe(join(root, 'mine.safetensors'));
    expect(await cache.fetch('replicate_weights', `file://${join(root, 'mine.safetensors')}`)).toBe(join(root, 'mine.safetensors'));
    await expectFailure(
      cache.fetch('replicate_weights', join(outside, 'secret.safetensors')),
      'replicate_weights',
      /must lie inside the server's LoRA folder$/,
    );
    await expectFailure(cache.fetch('replicate_weights', '../outside/secret.safetensors'), 'replicate_weights', /must lie inside the server's LoRA folder$/);
    await expectFailure(cache.fetch('replicate_weights', './link.safetensors'), 'replicate_weights', /links outside it/);
    await expectFailure(cache.fetch('replicate_weights', './nope.safetensors'), 'replicate_weights', /no such file in the server's LoRA folder/);
    await expectFailure(cache.fetch('replicate_weights', './bad.safetensors'), 'replicate_weights', /is not a (valid \.)?safetensors file: /);
    await expectFailure(cache.fetch('replicate_weights', root), 'replicate_weights', /must lie inside/);
  });
});

describe('LoraCache built-in LoRAs', () => {
  it('builtin:<name> is <name>.safetensors in the built-in model’s LoRA folder, and an error naming the known ones otherwise', async () => {
    const root = await mkdtemp(join(tempRoot(), 'builtin-loras-'));
    await writeFile(join(root, 'tok.safetensors'), A);

    const { cache } = await harness({ builtinRoot: root });
    expect(await cache.fetch('extra_lora', 'builtin:tok')).toBe(join(root, 'tok.safetensors'));
    await expectFailure(cache.fetch('extra_lora', 'builtin:nope'), 'extra_lora', /builtin:nope: no such built-in LoRA \(known: builtin:tok\)$/);

    const real = await harness();
    await expectFailure(
      real.cache.fetch('replicate_weights', 'builtin:tok'),
      'replicate_weights',
      /built-in LoRAs come with the built-in demo model, which this server does not run/,
    );
  });
});
