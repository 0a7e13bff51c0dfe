/** The HTML routes (playground at / for browsers, /docs, /assets) and the prediction list, through Fastify's inject. */
import { describe, expect, it } from 'vitest';
import { inject, SMALL, useServers } from './helpers.js';

const start = useServers('server-pages-');
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

describe('pages and discovery', () => {
  it('GET / answers JSON clients with Cog’s discovery document, cog_version and docs_url included', async () => {
    const server = await start();
    for (const accept of [undefined, '*/*', 'application/json', 'application/json, text/html;q=0.5']) {
      const answer = await inject(server, 'GET', '/', undefined, accept === undefined ? {} : { accept });
      expect(answer.status, String(accept)).toBe(200);
      expect(answer.body).toMatchObject({ cog_version: 'test', docs_url: '/docs', openapi_url: '/openapi.json', predictions_url: '/predictions' });
      expect(answer.headers.get('vary')).toBe('Accept');
    }
  });

  it('GET / answers browsers with the playground, which names the served model and forbids foreign scripts', async () => {
    const server = await start({ modelName: 'me/my-"model"' });
    const answer = await inject(server, 'GET', '/', undefined, { accept: BROWSER_ACCEPT });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(answer.text).toContain('<meta name="flux-lora-model" content="me/my-&quot;model&quot;" />');
    expect(answer.text).toContain('<script type="module" src="/assets/main.js"></script>');
    expect(answer.headers.get('content-security-policy')).toContain("default-src 'self'");
  });

  it('serves /docs and the built assets without a token; assets by name only, with ETags', async () => {
    const server = await start({ auth: { token: 'secret' } });
    expect((await inject(server, 'GET', '/docs')).text).toContain('<table id="inputs">');
    expect((await inject(server, 'GET', '/', undefined, { accept: BROWSER_ACCEPT })).status).toBe(200);
    const script = await inject(server, 'GET', '/assets/main.js');
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const etag = script.headers.get('etag') ?? '';
    expect((await inject(server, 'GET', '/assets/main.js', undefined, { 'if-none-match': etag })).status).toBe(304);
    expect((await inject(server, 'GET', '/assets/style.css')).headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect((await inject(server, 'GET', '/assets/missing.js')).body.detail).toBe('no asset missing.js');
    for (const path of ['/assets/..%2Fpackage.json', '/assets/index.html', '/assets/main.ts']) {
      expect((await inject(server, 'GET', path)).status, path).toBe(422);
    }
    expect((await inject(server, 'GET', '/v1/predictions')).status).toBe(401);
  });
});

describe('GET /v1/predictions', () => {
  it('lists the predictions newest first, a page at a time', async () => {
    const server = await start();
    const ids: string[] = [];
    for (let i = 0; i < 22; i++) {
      const created = await inject(server, 'POST', '/v1/predictions', { input: { ...SMALL, num_inference_steps: 1, seed: i } });
      expect(created.status, created.text).toBe(201);
      ids.push(created.body.id);
    }
    const first = await inject(server, 'GET', '/v1/predictions');
    const page = first.body as unknown as { previous: string | null; next: string | null; results: { id: string; input: { seed: number } }[] };
    expect(page.results.map((p) => p.id)).toEqual(ids.slice(2).reverse());
    expect(page.previous).toBeNull();
    expect(page.next).toMatch(/\/v1\/predictions\?cursor=20$/);
    const second = (await inject(server, 'GET', '/v1/predictions?cursor=20')).body as unknown as typeof page;
    expect(second.results.map((p) => p.id)).toEqual([ids[1], ids[0]]);
    expect(second.next).toBeNull();
    expect(second.previous).toMatch(/\?cursor=0$/);
    expect((await inject(server, 'GET', '/v1/predictions?cursor=-1')).status).toBe(422);
  });
});
