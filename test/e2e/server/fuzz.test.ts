/**
 * Fuzzed request bodies against both APIs: wrong types for every field, huge strings, deep
 * nesting, invalid JSON, bad data URIs. Every one is answered 4xx with a message, nothing is
 * run, and the server stays READY and keeps working. Bodies go through Fastify's inject (the
 * answers' shapes are checked); slow clients and the final prediction use real sockets.
 */
import { connect } from 'node:net';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { INPUT_SCHEMA } from '../../../src/predictor/schema.js';
import type { FluxServer } from '../../../src/server/app.js';
import { inject, request, SMALL, useServers, type Answer } from './helpers.js';

const serve = useServers('server-fuzz-');
const BODY_LIMIT = 2 * 1024 * 1024;
let server: FluxServer;

beforeAll(async () => {
  server = await serve({ bodyLimitBytes: BODY_LIMIT, requestTimeoutMs: 1000 });
});

/** mulberry32: a small seeded generator, so every run fuzzes the same cases. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Property = { type?: string; enum?: unknown[]; minimum?: number; maximum?: number; format?: string };
const properties = INPUT_SCHEMA.properties as unknown as Record<string, Property>;

/** Values no input of `property`'s kind accepts. */
function wrongValues(property: Property): unknown[] {
  const wrongType: Record<string, unknown[]> = {
    string: [5, true, null, {}, [1]],
    integer: ['7', 1.5, true, null, {}],
    number: ['0.5', false, null, [], {}],
    boolean: ['true', 0, 1, null, {}],
    array: [
      'x',
      5,
      {},
      null,
      [null],
      [{}],
      [{ weights: 5 }],
      [{ weights: 'a/b', scale: 'x' }],
      [{ weights: 'a/b', extra: 1 }],
      Array(9).fill({ weights: 'a/b' }),
    ],
  };
  const values = [...(wrongType[property.type ?? ''] ?? [])];
  if (property.enum !== undefined) values.push('not-a-choice', 'x'.repeat(100_000));
  if (property.maximum !== undefined) values.push(property.maximum + 1, 1e308);
  if (property.minimum !== undefined) values.push(property.minimum - 1, -1e308);
  return values;
}

const PNG_1PX = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC';
const BAD_IMAGES = [
  'data:image/png;base64,!!!!',
  'data:image/png;base64',
  'data:,',
  'data:image/png;base64,' + Buffer.from('not an image at all').toString('base64'),
  'data:image/png;base64,' + PNG_1PX.slice(0, 40),
  'file:///etc/passwd',
  '/etc/passwd',
  'ftp://example.com/x.png',
  'x'.repeat(1_000_000),
];

interface Case {
  name: string;
  body: unknown;
  headers?: Record<string, string>;
  /** Fields only Cog reads (the Replicate API ignores unknown fields, as Replicate does). */
  cogOnly?: boolean;
}

function cases(): Case[] {
  const list: Case[] = [];
  for (const [name, property] of Object.entries(properties)) {
    for (const value of wrongValues(property))
      list.push({ name: `input ${name}=${String(JSON.stringify(value)).slice(0, 40)}`, body: { input: { ...SMALL, [name]: value } } });
  }
  for (const image of BAD_IMAGES) list.push({ name: `image ${image.slice(0, 40)}`, body: { input: { ...SMALL, image } } });
  list.push({
    name: 'bad mask with a good image',
    body: { input: { ...SMALL, image: `data:image/png;base64,${PNG_1PX}`, mask: 'data:image/png;base64,AAAA' } },
  });
  for (const weights of ['not a lora source', 'huggingface.co/only-owner', 'civitai.com/models/abc', 'x'.repeat(500_000)]) {
    list.push({ name: `replicate_weights ${weights.slice(0, 30)}`, body: { input: { ...SMALL, replicate_weights: weights } } });
  }
  for (const input of ['a prompt', 5, [], true]) list.push({ name: `input ${JSON.stringify(input)}`, body: { input } });
  for (const body of [[], 'text', 7, null, true]) list.push({ name: `body ${JSON.stringify(body)}`, body: JSON.stringify(body) });
  const envelope: Record<string, unknown[]> = {
    webhook: [5, 'ftp://x', 'not a url', `http://h/${'a'.repeat(70_000)}`],
    webhook_events_filter: ['start', ['nope'], [1], ['start', 'start', 'logs', 'output', 'completed']],
    id: [5, {}, '', '../../etc', 'x'.repeat(200)],
    output_file_prefix: [5, 'file:///tmp/', 'nope'],
  };
  for (const [field, values] of Object.entries(envelope)) {
    const cogOnly = field === 'id' || field === 'output_file_prefix';
    for (const value of values) list.push({ name: `${field}=${String(JSON.stringify(value)).slice(0, 40)}`, body: { input: SMALL, [field]: value }, cogOnly });
  }
  const deep = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
  list.push({ name: 'deep nesting (100)', body: `{"input":{"prompt":"x","loras":${deep(100)}}}` });
  list.push({ name: 'deep nesting (100 000)', body: `{"input":${deep(100_000)}}` });
  for (const text of [
    '{',
    '{"input":',
    '{"input": {"prompt": "x"}}}',
    "{'input': {}}",
    'nul',
    '{"input": {"prompt": "\\x"}}',
    '{"__proto__": {"admin": true}, "input": {}}',
  ]) {
    list.push({ name: `invalid JSON ${text}`, body: text });
  }
  list.push({ name: 'body over the limit', body: JSON.stringify({ input: { ...SMALL, prompt: 'x'.repeat(BODY_LIMIT) } }) });
  list.push({ name: 'text/plain body', body: 'prompt=x', headers: { 'content-type': 'text/plain' } });
  // Random combinations of wrong fields.
  const next = random(8);
  const names = Object.keys(properties);
  for (let i = 0; i < 60; i++) {
    const input: Record<string, unknown> = { ...SMALL };
    for (let k = 0; k < 1 + Math.floor(next() * 3); k++) {
      const name = names[Math.floor(next() * names.length)] as string;
      const wrong = wrongValues(properties[name] as Property);
      input[name] = wrong[Math.floor(next() * wrong.length)];
    }
    list.push({ name: `random ${i}`, body: { input } });
  }
  return list;
}

/** What is wrong with `answer` as the refusal of a bad request: undefined for a 4xx with a message and no stack trace. */
function refusalProblem(answer: Answer): string | undefined {
  const detail = answer.body.detail;
  const message = typeof detail === 'string' ? detail : Array.isArray(detail) ? detail.map((d) => `${d.loc.join('.')} ${d.msg}`).join('; ') : '';
  // 409 would mean a bad request got to run (and now holds the server).
  if (answer.status < 400 || answer.status >= 500 || answer.status === 409) return `answered ${answer.status}: ${answer.text.slice(0, 200)}`;
  if (/\bat .+:\d+:\d+\)?$/m.test(answer.text)) return 'the answer holds a stack trace';
  if (!/\w{3}/.test(message)) return `no message: ${answer.text.slice(0, 200)}`;
  return undefined;
}

describe('fuzzed requests', () => {
  it('every bad body to POST /predictions, PUT /predictions/{id} and POST /v1/predictions is answered 4xx with a message', async () => {
    const all = cases();
    expect(all.length).toBeGreaterThan(200);
    const failures: string[] = [];
    for (const { name, body, headers, cogOnly } of all) {
      const routes: ['POST' | 'PUT', string][] = [
        ['POST', '/predictions'],
        ['PUT', '/predictions/fuzz'],
        ...(cogOnly ? [] : [['POST', '/v1/predictions'] as ['POST', string]]),
      ];
      for (const [method, path] of routes) {
        const problem = refusalProblem(await inject(server, method, path, body, headers));
        if (problem !== undefined) failures.push(`${method} ${path} ${name}: ${problem}`);
      }
    }
    expect(failures).toEqual([]);
    expect(server.service.store.get('fuzz')).toBeUndefined();
  });

  it('bad ids and paths are refused too', async () => {
    const paths = [
      '/predictions/%2E%2E%2Fetc/cancel',
      `/predictions/${'x'.repeat(300)}/cancel`,
      '/v1/predictions/a%00b',
      '/v1/streams/not-a-key',
      '/outputs/zz/out-0.webp',
      '/nowhere',
    ];
    const failures: string[] = [];
    for (const path of paths) {
      const problem = refusalProblem(await inject(server, path.includes('cancel') ? 'POST' : 'GET', path));
      if (problem !== undefined) failures.push(`${path}: ${problem}`);
    }
    expect(failures).toEqual([]);
  });

  it('a client too slow to send its request gets 408 and the connection is closed', async () => {
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    socket.write('POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inp');
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    const started = Date.now();
    await new Promise((resolve) => socket.on('close', resolve));
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('the server stays READY and still predicts', async () => {
    expect((await request(`${server.url}/health-check`, 'GET')).body.status).toBe('READY');
    const { body } = await request(`${server.url}/predictions`, 'POST', { input: SMALL });
    expect(body.status).toBe('succeeded');
    const webp = Buffer.from((body.output?.[0] ?? '').split(',')[1] ?? '', 'base64');
    expect(await sharp(webp).metadata()).toMatchObject({ width: 256, height: 256 });
  });
});
