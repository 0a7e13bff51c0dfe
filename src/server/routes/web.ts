/**
 * The browser pages, all public (they hold no data; the API calls they make carry the token):
 * the playground at `/` for clients that prefer HTML (JSON clients keep Cog's discovery
 * document there), `/docs` (the OpenAPI document rendered, linking the playground), and their
 * scripts and styles under `/assets/`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.js';
import { HttpError } from '../errors.js';
import { webAsset } from '../web-assets.js';

/** The quality the Accept header gives `type`: that of its most specific matching range, 0 when none matches. */
function quality(accept: string, type: string): number {
  let best = { specificity: -1, q: 0 };
  for (const part of accept.split(',')) {
    const [range = '', ...params] = part.trim().toLowerCase().split(';');
    const [major, minor] = range.trim().split('/');
    const specificity = range.trim() === type ? 2 : minor === '*' && (major === '*' || type.startsWith(`${major}/`)) ? (major === '*' ? 0 : 1) : -1;
    if (specificity <= best.specificity) continue;
    const q = Number(/^\s*q=([\d.]+)\s*$/.exec(params.find((p) => /^\s*q=/.test(p)) ?? '')?.[1] ?? 1);
    best = { specificity, q: Number.isFinite(q) ? q : 0 };
  }
  return best.specificity < 0 ? 0 : best.q;
}

/** A browser (Accept prefers text/html over JSON); curl's `*∕*` and JSON clients get JSON. */
export function prefersHtml(request: FastifyRequest): boolean {
  const accept = request.headers.accept;
  return accept !== undefined && quality(accept, 'text/html') > quality(accept, 'application/json');
}

/** The pages run only their own scripts and talk only to this server; images may come from anywhere (URL inputs). */
const PAGE_POLICY = "default-src 'self'; img-src * data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const escapeAttribute = (text: string) => text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

async function sendAsset(request: FastifyRequest, reply: FastifyReply, name: string, transform?: (text: string) => string) {
  const asset = await webAsset(name);
  if (asset === undefined) {
    throw new HttpError(name.endsWith('.html') ? 503 : 404, name.endsWith('.html') ? 'the web pages are not built: run npm run build' : `no asset ${name}`);
  }
  reply.type(asset.type).header('Cache-Control', 'no-cache').header('X-Content-Type-Options', 'nosniff');
  if (name.endsWith('.html')) reply.header('Content-Security-Policy', PAGE_POLICY);
  if (transform !== undefined) return reply.send(transform(asset.body.toString('utf8')));
  reply.header('ETag', asset.etag);
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  return reply.send(asset.body);
}

/** The playground page, told which owner/name the server answers to (for its code snippets). */
export function sendPlayground(request: FastifyRequest, reply: FastifyReply, context: ServerContext) {
  const model = escapeAttribute(context.modelName ?? '');
  return sendAsset(request, reply, 'index.html', (html) =>
    html.replace(/<meta name="flux-lora-model" content="[^"]*"/, `<meta name="flux-lora-model" content="${model}"`),
  );
}

export function webRoutes(app: FastifyInstance): void {
  const config = { public: true };
  app.get('/docs', { config }, (request, reply) => sendAsset(request, reply, 'docs.html'));
  app.get<{ Params: { name: string } }>(
    '/assets/:name',
    { config, schema: { params: { type: 'object', properties: { name: { type: 'string', pattern: '^[a-z0-9-]+\\.(js|css|svg)$' } } } } },
    (request, reply) => sendAsset(request, reply, request.params.name),
  );
}
