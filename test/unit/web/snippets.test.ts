import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { curlSnippet, javascriptSnippet, pythonSnippet, type SnippetRequest } from '../../../web/src/snippets.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const run = promisify(execFile);
const tmp = useTempDir('snippets-');

const TRICKY = `it's $HOME \`date\` \\ "quoted" ☃`;
const REQUEST: SnippetRequest = {
  baseUrl: 'http://127.0.0.1:5000',
  model: 'any-owner/flux-lora',
  input: { prompt: TRICKY, seed: 7, go_fast: true, image: 'data:image/png;base64,AAAA', loras: [{ weights: 'a/b', scale: 0.5 }], extra: null },
  files: { image: { fileName: "my photo's.png", mimeType: 'image/png' } },
  format: 'webp',
};

/** Runs the curl snippet with a stand-in `curl` that prints its arguments and the body it would send. */
async function curlRequest(request: SnippetRequest, cwd: string): Promise<{ args: string[]; body: unknown }> {
  const script = `curl() { printf '%s\\n' "$@" > args.txt; cat; }\n${curlSnippet(request)}`;
  const { stdout } = await run('bash', ['-c', script], { cwd, env: { ...process.env, FLUX_LORA_API_TOKEN: 'secret' } });
  return { args: readFileSync(join(cwd, 'args.txt'), 'utf8').trim().split('\n'), body: JSON.parse(stdout) };
}

describe('API tab snippets', () => {
  it('curl sends the input as the page does, shell characters and all, with the token from the environment', async () => {
    const dir = tmp();
    writeFileSync(join(dir, "my photo's.png"), Buffer.from([1, 2, 3, 250]));
    const { args, body } = await curlRequest(REQUEST, dir);
    expect(body).toEqual({ input: { ...REQUEST.input, image: `data:image/png;base64,${Buffer.from([1, 2, 3, 250]).toString('base64')}` } });
    expect(args).toContain('http://127.0.0.1:5000/v1/models/any-owner/flux-lora/predictions');
    expect(args).toContain('Authorization: Bearer secret');
    expect(args).toContain('Prefer: wait');
  });

  it('curl without files sends the input unchanged', async () => {
    const { body } = await curlRequest({ ...REQUEST, files: {} }, tmp());
    expect(body).toEqual({ input: REQUEST.input });
  });

  it('JavaScript uses the replicate client with baseUrl, reads files as data URIs and is valid syntax', async () => {
    const code = javascriptSnippet(REQUEST);
    expect(code).toContain(`new Replicate({ auth: process.env.FLUX_LORA_API_TOKEN, baseUrl: "http://127.0.0.1:5000/v1" })`);
    expect(code).toContain(`image: await dataUri("my photo's.png", "image/png"),`);
    expect(code).toContain('go_fast: true,');
    expect(code).toContain('await replicate.run("any-owner/flux-lora", { input });');
    expect(code).toContain('`out-${index}.webp`');
    const file = join(tmp(), 'snippet.mjs');
    writeFileSync(file, code);
    await run(process.execPath, ['--check', file]);
    expect(javascriptSnippet({ ...REQUEST, files: {} })).not.toContain('readFile');
  });

  it('Python uses replicate.Client with base_url (its paths carry /v1) and Python literals', () => {
    const code = pythonSnippet(REQUEST);
    expect(code).toContain('replicate.Client(api_token=os.environ.get("FLUX_LORA_API_TOKEN"), base_url="http://127.0.0.1:5000")');
    expect(code).toContain('"image": data_uri("my photo\'s.png", "image/png")');
    expect(code).toContain('"go_fast": True');
    expect(code).toContain('"extra": None');
    expect(code).toContain('use_file_output=False');
    expect(code).toContain('f"out-{index}.webp"');
    expect(pythonSnippet({ ...REQUEST, files: {} })).not.toContain('import base64');
  });
});
