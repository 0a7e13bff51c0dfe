/**
 * The JSON body parser: Fastify's own (prototype-poisoning checks included), except that an
 * empty body is `{}` (the Replicate client sends cancel with a JSON content type and no body)
 * and a body nested deeper than `maxDepth` is refused before anything walks it recursively.
 */
import type { FastifyInstance } from 'fastify';
import { HttpError } from './errors.js';

function deeperThan(value: unknown, maxDepth: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [node, depth] = item;
    if (node === null || typeof node !== 'object') continue;
    if (depth >= maxDepth) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

export function registerJsonBody(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, {});
    // The default parser answers through `done`; what it returns carries nothing more.
    void parse(request, text, (error, value) => {
      if (error !== null) return done(error, undefined);
      if (deeperThan(value, maxDepth)) return done(new HttpError(400, `the JSON body is nested more than ${maxDepth} levels deep`), undefined);
      done(null, value);
    });
  });
}
