/**
 * Local fakes of the LoRA hosts on 127.0.0.1 (random ports): the HuggingFace API and `resolve`
 * files, the CivitAI API and downloads, Replicate `_weights` redirecting to a tar on a delivery
 * host, and a plain file server whose routes can also fail in chosen ways. Every request is
 * recorded (host, path with query, headers) so tests can count downloads and check credentials.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Header } from 'tar';
import type { LoraHosts } from '../../src/lora/sources.js';
import { writeSafetensors } from '../../src/weights/safetensors-writer.js';

export type HostName = 'huggingface' | 'civitai' | 'replicate' | 'files';

export interface RecordedRequest {
  host: HostName;
  /** Path and query string. */
  path: string;
  headers: IncomingHttpHeaders;
}

/** How a route answers. */
export type Route =
  | { body: Uint8Array; headers?: Record<string, string>; delayMs?: number }
  | { status: number; body?: string }
  /** Accepts the request and never answers. */
  | { hang: true }
  /** Declares the full length, sends `dropAfter` bytes, then drops the connection. */
  | { body: Uint8Array; dropAfter: number }
  | { redirect: string };

/** A tiny valid LoRA-like safetensors file: one F32 [2,2] tensor whose values depend on `seed`. */
export async function makeSafetensors(seed: number, name = 'lora_unet_x.lora_down.weight'): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpdir(), 'flux-lora-fake-st-'));
  try {
    const path = join(dir, 'lora.safetensors');
    await writeSafetensors(path, [{ name, dtype: 'F32', shape: [2, 2], data: Float32Array.from([seed, seed + 1, seed + 2, seed + 3]) }]);
    return new Uint8Array(await readFile(path));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A ustar archive of the given entries, written with node-tar's header encoder (any path, even hostile ones). */
export function makeTar(entries: readonly { path: string; data: Uint8Array }[]): Uint8Array {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const header = new Header({ path: entry.path, size: entry.data.byteLength, mode: 0o644, type: 'File', mtime: new Date(0), uid: 0, gid: 0 });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block, Buffer.from(entry.data), Buffer.alloc((512 - (entry.data.byteLength % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return new Uint8Array(Buffer.concat(blocks));
}

export class FakeLoraHosts {
  readonly requests: RecordedRequest[] = [];
  /** HuggingFace repos: `owner/repo` → file path in the repo → bytes. */
  readonly hfRepos = new Map<string, Map<string, Uint8Array>>();
  /** CivitAI models: model id → version ids, newest first. */
  readonly civitaiModels = new Map<string, string[]>();
  /** CivitAI downloads: version id → bytes. */
  readonly civitaiFiles = new Map<string, Uint8Array>();
  /** Replicate weights: `owner/name` or `owner/name/version` → tar bytes (served from the files host). */
  readonly replicateWeights = new Map<string, Uint8Array>();
  /** Files host routes by path (without query). */
  readonly files = new Map<string, Route>();
  /** Routes that win over a host's normal behaviour, by `host path` (path without query). */
  readonly overrides = new Map<string, Route>();
  /** A host with a token here answers 401 unless the request carries `Authorization: Bearer <token>`. */
  readonly requiredTokens: Partial<Record<HostName, string>> = {};

  private constructor(
    private readonly servers: Record<HostName, Server>,
    readonly urls: Record<HostName, string>,
  ) {}

  static async start(): Promise<FakeLoraHosts> {
    const names: HostName[] = ['huggingface', 'civitai', 'replicate', 'files'];
    const started: { fake?: FakeLoraHosts } = {};
    const servers = {} as Record<HostName, Server>;
    const urls = {} as Record<HostName, string>;
    for (const name of names) {
      const server = createServer((req, res) => started.fake?.handle(name, req, res));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers[name] = server;
      urls[name] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
    started.fake = new FakeLoraHosts(servers, urls);
    return started.fake;
  }

  /** Base URLs for LoraCacheOptions.hosts. */
  get hosts(): LoraHosts {
    return { huggingface: this.urls.huggingface, civitai: this.urls.civitai, replicate: this.urls.replicate };
  }

  /** Requests to `host` whose path starts with `prefix`. */
  count(host: HostName, prefix = '/'): number {
    return this.requests.filter((r) => r.host === host && r.path.startsWith(prefix)).length;
  }

  async close(): Promise<void> {
    for (const server of Object.values(this.servers)) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private handle(host: HostName, req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    this.requests.push({ host, path, headers: req.headers });
    const url = new URL(path, 'http://fake');
    const override = this.overrides.get(`${host} ${url.pathname}`);
    if (override !== undefined) return serve(res, override);
    const token = this.requiredTokens[host];
    if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) return serve(res, { status: 401, body: 'Unauthorized' });
    serve(res, this.route(host, url) ?? { status: 404, body: 'Not found' });
  }

  private route(host: HostName, url: URL): Route | undefined {
    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
    switch (host) {
      case 'huggingface': {
        if (parts[0] === 'api' && parts[1] === 'models' && parts.length === 4) {
          const repo = this.hfRepos.get(`${parts[2]}/${parts[3]}`);
          if (repo === undefined) return { status: 404, body: '{"error":"Repository not found"}' };
          const siblings = [...repo.keys()].map((rfilename) => ({ rfilename }));
          return { body: Buffer.from(JSON.stringify({ id: `${parts[2]}/${parts[3]}`, siblings })), headers: { 'content-type': 'application/json' } };
        }
        if (parts[2] === 'resolve' && parts.length >= 5) {
          const file = this.hfRepos.get(`${parts[0]}/${parts[1]}`)?.get(parts.slice(4).join('/'));
          return file === undefined ? undefined : { body: file };
        }
        return undefined;
      }
      case 'civitai': {
        if (url.pathname.startsWith('/api/v1/models/')) {
          const versions = this.civitaiModels.get(parts[3] ?? '');
          if (versions === undefined) return { status: 404, body: '{"error":"No model with id"}' };
          return { body: Buffer.from(JSON.stringify({ id: Number(parts[3]), modelVersions: versions.map((id) => ({ id: Number(id) })) })) };
        }
        if (url.pathname.startsWith('/api/download/models/')) {
          const file = this.civitaiFiles.get(parts[3] ?? '');
          return file === undefined ? undefined : { body: file };
        }
        return undefined;
      }
      case 'replicate': {
        // /<owner>/<name>/_weights or /<owner>/<name>/versions/<version>/_weights → 302 to the delivery host
        const id =
          parts.length === 3 && parts[2] === '_weights'
            ? `${parts[0]}/${parts[1]}`
            : parts.length === 5 && parts[2] === 'versions' && parts[4] === '_weights'
              ? `${parts[0]}/${parts[1]}/${parts[3]}`
              : undefined;
        if (id === undefined || !this.replicateWeights.has(id)) return undefined;
        return { redirect: `${this.urls.files}/delivery/${id}/trained_model.tar?signature=abc` };
      }
      case 'files': {
        if (url.pathname.startsWith('/delivery/')) {
          const id = parts.slice(1, -1).join('/');
          const tar = this.replicateWeights.get(id);
          return tar === undefined ? undefined : { body: tar };
        }
        return this.files.get(url.pathname);
      }
    }
  }
}

function serve(res: ServerResponse, route: Route): void {
  if ('hang' in route) return;
  if ('redirect' in route) {
    res.writeHead(302, { location: route.redirect });
    res.end();
    return;
  }
  if ('status' in route) {
    res.writeHead(route.status, { 'content-type': 'text/plain' });
    res.end(route.body ?? '');
    return;
  }
  if ('dropAfter' in route) {
    res.writeHead(200, { 'content-length': String(route.body.byteLength), 'content-type': 'application/octet-stream' });
    res.write(Buffer.from(route.body.subarray(0, route.dropAfter)), () => setTimeout(() => res.socket?.destroy(), 20));
    return;
  }
  const send = (): void => {
    res.writeHead(200, { 'content-length': String(route.body.byteLength), 'content-type': 'application/octet-stream', ...route.headers });
    res.end(Buffer.from(route.body));
  };
  if (route.delayMs === undefined) send();
  else setTimeout(send, route.delayMs);
}
