/**
 * The built browser pages (web/, compiled into dist/web by `npm run build`): read once, kept in
 * memory (a few tens of kB) and served by name, so no request path ever reaches the file system.
 * From src/server (tests run the sources) and from dist/server alike, `../../dist/web` is the
 * package's dist/web.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = fileURLToPath(new URL('../../dist/web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export interface WebAsset {
  type: string;
  body: Buffer;
  etag: string;
}

async function load(dir: string): Promise<Map<string, WebAsset>> {
  const assets = new Map<string, WebAsset>();
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const type = TYPES[extname(name)];
    if (type === undefined) continue;
    const body = await readFile(join(dir, name));
    assets.set(name, { type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return assets;
}

let loaded: Promise<Map<string, WebAsset>> | undefined;

/** The asset called `name` (e.g. `index.html`, `main.js`), or undefined when there is none or the pages are not built. */
export async function webAsset(name: string): Promise<WebAsset | undefined> {
  loaded ??= load(WEB_DIR);
  const assets = await loaded;
  // Not built yet: look again next time rather than remember the absence.
  if (assets.size === 0) loaded = undefined;
  return assets.get(name);
}
