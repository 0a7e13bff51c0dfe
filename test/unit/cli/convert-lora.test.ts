/** `flux-lora convert-lora`: usage, the files it writes, and every refusal naming what is wrong, with no output file left behind. */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILTIN_ASSETS } from '../../../src/builtin/tiny-model.js';
import { openTensorSource } from '../../../src/weights/safetensors.js';
import { writeSafetensors } from '../../../src/weights/safetensors-writer.js';
import { cli } from '../../helpers/run-cli.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('convert-lora-cli-');
const TOK = join(BUILTIN_ASSETS, 'loras', 'tok.safetensors');
const MODEL = ['--model-dir', BUILTIN_ASSETS];
let folders = 0;

/** A fresh folder, so that what a failed command left in it can be listed. */
function folder(): string {
  const dir = join(tmp(), `run-${folders++}`);
  mkdirSync(dir);
  return dir;
}

describe('flux-lora convert-lora', () => {
  it('converts the built-in TOK LoRA to kohya and back, and says what it wrote', async () => {
    const dir = folder();
    const kohya = join(dir, 'tok-kohya.safetensors');
    const r = await cli('convert-lora', TOK, kohya, '--to', 'kohya', ...MODEL);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^Wrote .*tok-kohya\.safetensors \(kohya format, from peft format\): \d+ transformer modules, 0 text-encoder modules\n$/);
    expect((await openTensorSource(kohya)).names()).toContain('lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight');
    const back = join(dir, 'tok-peft.safetensors');
    expect((await cli('convert-lora', kohya, back, '--to', 'peft', ...MODEL)).code).toBe(0);
    expect(new Set((await openTensorSource(back)).names())).toEqual(new Set((await openTensorSource(TOK)).names()));
    expect(readdirSync(dir).sort()).toEqual(['tok-kohya.safetensors', 'tok-peft.safetensors']);
  });

  it('takes a built-in LoRA by its name', async () => {
    const output = join(folder(), 'tok.safetensors');
    expect((await cli('convert-lora', 'builtin:tok', output, '--to', 'kohya', ...MODEL)).code).toBe(0);
    expect((await openTensorSource(output)).names()).toContain('lora_unet_single_blocks_0_linear1.lora_up.weight');
    expect(await cli('convert-lora', 'builtin:nope', output, '--to', 'kohya', '--force')).toMatchObject({
      code: 2,
      stderr: 'flux-lora: convert-lora: builtin:nope: no such built-in LoRA (known: builtin:tok)\n',
    });
  });

  it('refuses to replace an output unless --force', async () => {
    const dir = folder();
    const output = join(dir, 'out.safetensors');
    writeFileSync(output, 'keep me');
    const r = await cli('convert-lora', TOK, output, '--to', 'kohya', ...MODEL);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe(`flux-lora: LoRA ${TOK}: cannot convert: the output ${output} exists (replace it with --force)\n`);
    expect(readFileSync(output, 'utf8')).toBe('keep me');
    expect((await cli('convert-lora', TOK, output, '--to', 'kohya', '--force', ...MODEL)).code).toBe(0);
    expect((await openTensorSource(output)).names().length).toBeGreaterThan(0);
    expect(readdirSync(dir)).toEqual(['out.safetensors']);
  });

  it('names the input that is missing, not a LoRA, or has a module the transformer lacks, and writes nothing', async () => {
    const dir = folder();
    const output = join(dir, 'out.safetensors');
    const missing = join(dir, 'missing.safetensors');
    expect(await cli('convert-lora', missing, output, '--to', 'kohya', ...MODEL)).toMatchObject({ code: 1, stderr: `flux-lora: ${missing}: no such file\n` });
    const text = join(dir, 'text.safetensors');
    writeFileSync(text, 'hello');
    expect((await cli('convert-lora', text, output, '--to', 'kohya', ...MODEL)).stderr).toMatch(/^flux-lora: .*text\.safetensors: not a safetensors file/);
    const other = join(dir, 'other.safetensors');
    await writeSafetensors(other, [{ name: 'encoder.block.0.weight', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) }]);
    expect((await cli('convert-lora', other, output, '--to', 'peft', ...MODEL)).stderr).toBe(
      `flux-lora: LoRA ${other}: cannot convert: no LoRA down/up weight pairs in it\n`,
    );
    const stray = join(dir, 'stray.safetensors');
    await writeSafetensors(stray, [
      { name: 'lora_unet_double_blocks_99_img_attn_proj.lora_down.weight', dtype: 'F32', shape: [1, 4], data: new Float32Array(4) },
      { name: 'lora_unet_double_blocks_99_img_attn_proj.lora_up.weight', dtype: 'F32', shape: [4, 1], data: new Float32Array(4) },
    ]);
    expect((await cli('convert-lora', stray, output, '--to', 'peft', ...MODEL)).stderr).toBe(
      `flux-lora: LoRA ${stray}: "lora_unet_double_blocks_99_img_attn_proj.lora_down.weight": this FLUX transformer has no module "double_blocks_99_img_attn_proj"\n`,
    );
    expect(readdirSync(dir).sort()).toEqual(['other.safetensors', 'stray.safetensors', 'text.safetensors']);
  });

  it('answers a wrong invocation with a usage error (exit 2) and --help with the usage', async () => {
    const output = join(tmp(), 'never.safetensors');
    expect(await cli('convert-lora', TOK, output)).toMatchObject({
      code: 2,
      stderr: 'flux-lora: convert-lora: --to must be one of kohya, peft, got nothing\n',
    });
    expect(await cli('convert-lora', TOK, output, '--to', 'comfy')).toMatchObject({
      code: 2,
      stderr: 'flux-lora: convert-lora: --to must be one of kohya, peft, got "comfy"\n',
    });
    expect((await cli('convert-lora', TOK, '--to', 'kohya')).stderr).toBe(
      'flux-lora: convert-lora: give an input and an output file; see flux-lora convert-lora --help\n',
    );
    expect((await cli('convert-lora', TOK, output, 'more', '--to', 'kohya')).stderr).toBe('flux-lora: convert-lora: unexpected argument "more"\n');
    expect(await cli('convert-lora', TOK, output, '--to', 'kohya', '--bogus')).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^flux-lora: convert-lora: Unknown option '--bogus'/),
    });
    expect((await cli('convert-lora', TOK, output, '--to', 'kohya', '--model-dir', join(tmp(), 'nowhere'))).stderr).toMatch(/nowhere: no such folder/);
    const help = await cli('convert-lora', '--help');
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('Usage: flux-lora convert-lora <input.safetensors> <output.safetensors> --to kohya|peft');
    expect((await cli('--help')).stdout).toContain('convert-lora');
    expect(readdirSync(tmp())).not.toContain('never.safetensors');
  });
});
