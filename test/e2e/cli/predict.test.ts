import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { INPUT_NAMES } from '../../../src/predictor/schema.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('cli-predict-');
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
let n = 0;

/** A fresh working folder; the built-in model is cached once for the whole file. */
function workdir(): string {
  const dir = join(tmp(), `cwd-${n++}`);
  mkdirSync(dir);
  return dir;
}

async function cli(argv: string[], cwd = workdir(), env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const context = {
    cwd,
    env: { FLUX_LORA_CACHE_DIR: join(tmp(), 'cache'), ...env },
    errIsTTY: false,
    onInterrupt: () => undefined,
    offInterrupt: () => undefined,
  };
  const code = await main(
    argv,
    (t) => (stdout += t),
    (t) => (stderr += t),
    context,
  );
  return { code, stdout, stderr, cwd };
}

describe('flux-lora predict', () => {
  it("runs the README's main command on the built-in model, from the installed bin", async () => {
    const cwd = workdir();
    const bin = join(ROOT, 'dist', 'cli.js');
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, 'predict', '-i', 'prompt=a photo of TOK'], {
      cwd,
      env: { ...process.env, FLUX_LORA_CACHE_DIR: join(tmp(), 'cache'), FLUX_MODEL_DIR: '' },
    });
    expect(stdout).toBe(`${join(cwd, 'out-0.webp')}\n`);
    expect(await sharp(join(cwd, 'out-0.webp')).metadata()).toMatchObject({ format: 'webp', width: 1024, height: 1024 });
    expect(stderr).toContain('runs the built-in demo model');
    expect(stderr).toMatch(/It knows these words: .*circle.*on the left.*TOK with its LoRA.*replicate_weights=builtin:tok/);
    expect(stderr).toMatch(/^Using seed: \d+$/m);
    // Plain progress lines (not a terminal): one per tenth of the 28 steps.
    expect(stderr.match(/^[█·]+ \d+\/28 \[/gm)?.length).toBe(10);
  });

  it('types inputs from the schema, reads @files, writes to --output-dir and prints the prediction with --json', async () => {
    const cwd = workdir();
    await sharp({ create: { width: 40, height: 30, channels: 3, background: '#336699' } })
      .png()
      .toFile(join(cwd, 'in.png'));
    const r = await cli(
      [
        'predict',
        '-i',
        'prompt=x',
        '-i',
        'image=@in.png',
        '-i',
        'num_inference_steps=2',
        '-i',
        'seed=11',
        '-i',
        'go_fast=false',
        '-i',
        'output_format=png',
        '-o',
        'results',
        '--json',
      ],
      cwd,
    );
    expect(r.code).toBe(0);
    const prediction = JSON.parse(r.stdout) as {
      status: string;
      input: Record<string, unknown>;
      output: string[];
      logs: string;
      metrics: Record<string, number>;
    };
    expect(prediction.status).toBe('succeeded');
    expect(prediction.input).toEqual({ prompt: 'x', image: join(cwd, 'in.png'), num_inference_steps: 2, seed: 11, go_fast: false, output_format: 'png' });
    expect(prediction.output).toEqual([`file://${join(cwd, 'results', 'out-0.png')}`]);
    const logs = prediction.logs.split('\n');
    expect(logs.slice(logs.indexOf('Using seed: 11'), logs.indexOf('Using seed: 11') + 5)).toEqual([
      'Using seed: 11',
      'Prompt: x',
      '[!] img2img mode',
      'Input image size: 40x30',
      '[!] Resizing input image from 40x30 to 48x32',
    ]);
    expect(prediction.metrics.seed).toBe(11);
    expect(readdirSync(join(cwd, 'results'))).toEqual(['out-0.png']);
  });

  it("runs the README's image examples on the shipped example files (white in the mask is repainted)", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('-i image=@examples/photo.png -i mask=@examples/mask.png');
    const photo = await sharp(join(ROOT, 'examples/photo.png')).metadata();
    const mask = await sharp(join(ROOT, 'examples/mask.png')).raw().toBuffer({ resolveWithObject: true });
    expect([mask.info.width, mask.info.height]).toEqual([photo.width, photo.height]);
    expect(new Set(mask.data)).toEqual(new Set([0, 255]));
    // As in the README: run from a folder holding examples/.
    const cwd = workdir();
    cpSync(join(ROOT, 'examples'), join(cwd, 'examples'), { recursive: true });
    const r = await cli(
      ['predict', '-i', 'prompt=a cat', '-i', 'image=@examples/photo.png', '-i', 'mask=@examples/mask.png', '-i', 'num_inference_steps=2'],
      cwd,
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('[!] inpaint mode');
    expect(r.stdout).toBe(`${join(cwd, 'out-0.webp')}\n`);
  });

  it('says in the log what it changes or ignores: seeds per output, unused sizes, a resized mask, replaced files, speed and total time', async () => {
    const cwd = workdir();
    const small = ['-i', 'prompt=x', '-i', 'num_inference_steps=2', '-i', 'seed=4294967295', '-i', 'megapixels=0.25'];
    const first = await cli(['predict', ...small, '-i', 'num_outputs=2', '-i', 'width=300'], cwd);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain('Seeds per output: out-0.webp 4294967295, out-1.webp 0\n');
    expect(first.stderr).toContain('[!] width not used: aspect_ratio is "1:1" (set aspect_ratio=custom to choose the size)\n');
    expect(first.stderr).toMatch(/^output 2\/2 [█·]+ 2\/2 \[\d+\.\ds, ETA 0\.0s, \d+\.\d\d it\/s\]$/m);
    expect(first.stderr).toMatch(/^Total time: \d+\.\d\ds$/m);
    expect(first.stderr).not.toContain('Replacing');
    // The same names again: the files are replaced, and the log says so.
    const again = await cli(['predict', ...small], cwd);
    expect(again.stderr).toContain(`Replacing the existing ${join(cwd, 'out-0.webp')}\n`);
    expect(again.stderr).not.toContain('Seeds per output');
    // A mask of another size than the image is resized to it, once said.
    await sharp({ create: { width: 20, height: 10, channels: 3, background: '#ffffff' } })
      .png()
      .toFile(join(cwd, 'mask.png'));
    await sharp({ create: { width: 40, height: 30, channels: 3, background: '#336699' } })
      .png()
      .toFile(join(cwd, 'in.png'));
    const inpaint = await cli(['predict', ...small, '-i', 'image=in.png', '-i', 'mask=mask.png', '-i', 'height=512', '-o', 'inpaint'], cwd);
    expect(inpaint.code).toBe(0);
    expect(inpaint.stderr).toContain('[!] The mask is 20x10, the image 40x30: resizing the mask to the image\n');
    expect(inpaint.stderr).toContain("[!] height not used: the output takes the input image's size\n");
  });

  it('reports invalid inputs by name with exit code 1 and writes nothing', async () => {
    const r = await cli(['predict', '-i', 'prompt=x', '-i', 'num_outputs=many', '-i', 'aspect_ratio=custom', '-i', 'width=300']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('flux-lora: invalid input: num_outputs: "many" is not a whole number; height: is required when aspect_ratio is "custom"');
    expect(readdirSync(r.cwd)).toEqual([]);
    const json = await cli(['predict', '-i', 'prompt=x', '-i', 'seed=1.5', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'failed', output: null, detail: [{ input: 'seed', message: '"1.5" is not a whole number' }] });
  });

  it('--disable-safety-checker alone runs without the checker: the CLI user is the operator', async () => {
    const small = ['-i', 'prompt=x', '-i', 'aspect_ratio=custom', '-i', 'width=256', '-i', 'height=256', '-i', 'num_inference_steps=1'];
    const r = await cli(['predict', ...small, '--disable-safety-checker']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${join(r.cwd, 'out-0.webp')}\n`);
    expect(r.stderr).toContain('Safety checker: disabled');
    expect(r.stderr).not.toContain('Total safe images');
    const contradicted = await cli(['predict', ...small, '-i', 'disable_safety_checker=false', '--disable-safety-checker']);
    expect(contradicted.code).toBe(1);
    expect(contradicted.stderr).toContain('disable_safety_checker');
  });

  it('refuses malformed arguments as usage errors', async () => {
    expect(await cli(['predict', '-i', 'prompt'])).toMatchObject({ code: 2, stderr: 'flux-lora: predict: -i expects <name>=<value>, got "prompt"\n' });
    expect(await cli(['predict', '-i', 'prompt=a', '-i', 'prompt=b'])).toMatchObject({
      code: 2,
      stderr: 'flux-lora: predict: input "prompt" is given more than once\n',
    });
    expect(await cli(['predict', '-i', 'prompt=a', '--memory-budget', 'lots'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--memory-budget must be a positive number of GiB'),
    });
    expect((await cli(['predict', '--nope'])).code).toBe(2);
    expect((await cli(['predict', '--help'])).stdout).toContain('Usage: flux-lora predict -i <name>=<value>');
    const missing = await cli(['predict', '-i', 'prompt=a'], workdir(), { FLUX_MODEL_DIR: join(tmp(), 'no-such-models') });
    expect(missing).toMatchObject({ code: 1, stderr: `flux-lora: model folder ${join(tmp(), 'no-such-models')}: no such folder\n` });
  });
});

describe('flux-lora schema and eval pipeline', () => {
  it('prints the OpenAPI input and output schemas', async () => {
    const r = await cli(['schema']);
    const doc = JSON.parse(r.stdout) as {
      openapi: string;
      components: { schemas: { Input: { properties: Record<string, { 'x-order': number }> }; Output: unknown } };
    };
    expect(doc.openapi).toBe('3.0.2');
    expect(Object.keys(doc.components.schemas.Input.properties)).toEqual(INPUT_NAMES);
    expect(doc.components.schemas.Output).toEqual({ type: 'array', title: 'Output', items: { type: 'string', format: 'uri' } });
    expect((await cli(['schema', 'extra'])).code).toBe(2);
  });

  it('eval pipeline writes the golden names within tolerance', async () => {
    const out = join(workdir(), 'inpaint.safetensors');
    const r = await cli(['eval', 'pipeline', '--model', goldenPath('.'), '--case', goldenPath('pipeline_inpaint.safetensors'), '--out', out]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const [written, golden] = [await SafetensorsFile.open(out), await SafetensorsFile.open(goldenPath('pipeline_inpaint.safetensors'))];
    for (const name of written.names().filter((k) => golden.has(k)))
      expectAllClose(await written.readFloat32(name), await golden.readFloat32(name), 3e-5, 3e-5, name);
    expect(written.names().filter((k) => golden.has(k)).length).toBe(6);
  });
});
