import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../../helpers/run-cli.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('eval-transformer-');

describe('flux-lora eval transformer', () => {
  it('evaluates every golden case and writes the outputs under the golden names', async () => {
    const out = join(tmp(), 'A.safetensors');
    const cases = goldenPath('transformer_A_cases.safetensors');
    expect(await cli('eval', 'transformer', '--model', goldenPath('transformer_A_diffusers.safetensors'), '--case', cases, '--out', out)).toEqual({
      code: 0,
      stdout: '',
      stderr: '',
    });
    const [written, golden] = [await SafetensorsFile.open(out), await SafetensorsFile.open(cases)];
    expect(written.names().sort()).toEqual(['case0.expected', 'case1.expected', 'case2.expected']);
    for (const name of written.names()) {
      expect(written.info(name).shape).toEqual(golden.info(name).shape);
      expectAllClose(await written.readFloat32(name), await golden.readFloat32(name), 1e-5, 1e-5, name);
    }
  });

  it('applies LoRAs given with --lora file:scale to the golden LoRA input', async () => {
    const out = join(tmp(), 'pair.safetensors');
    const args = ['eval', 'transformer', '--model', goldenPath('transformer_A_bfl.safetensors'), '--case', goldenPath('lora_cases.safetensors'), '--out', out];
    const loras = ['--lora', `${goldenPath('lora_peft_r4.safetensors')}:0.7`, '--lora', `${goldenPath('lora_kohya_r8.safetensors')}:-0.4`];
    expect(await cli(...args, ...loras)).toEqual({ code: 0, stdout: '', stderr: '' });
    const golden = await SafetensorsFile.open(goldenPath('lora_cases.safetensors'));
    expectAllClose(
      await (await SafetensorsFile.open(out)).readFloat32('input.expected'),
      await golden.readFloat32('pair_peft_kohya.expected'),
      1e-5,
      1e-5,
      'pair',
    );
    const noMatch = await cli(...args, '--lora', goldenPath('t5_weights.safetensors'));
    expect(noMatch.code).toBe(1);
    expect(noMatch.stderr).toMatch(/no tensor applies to this FLUX transformer/);
  });

  it('reports a bad model or case file as a failure naming the file', async () => {
    const out = join(tmp(), 'x.safetensors');
    const wrongModel = await cli(
      'eval',
      'transformer',
      '--model',
      goldenPath('vae_bfl.safetensors'),
      '--case',
      goldenPath('transformer_A_cases.safetensors'),
      '--out',
      out,
    );
    expect(wrongModel.code).toBe(1);
    expect(wrongModel.stderr).toMatch(/vae_bfl\.safetensors: not a FLUX\.1 transformer checkpoint/);
    const wrongCase = await cli(
      'eval',
      'transformer',
      '--model',
      goldenPath('transformer_B_bfl.safetensors'),
      '--case',
      goldenPath('t5_cases.safetensors'),
      '--out',
      out,
    );
    expect(wrongCase.code).toBe(1);
    expect(wrongCase.stderr).toMatch(/t5_cases\.safetensors: no cases \(expected tensors named case<k>\.hidden_states\)/);
    const missing = await cli(
      'eval',
      'transformer',
      '--model',
      goldenPath('transformer_B_bfl.safetensors'),
      '--case',
      goldenPath('transformer_B_cases.safetensors'),
    );
    expect(missing).toEqual({ code: 2, stdout: '', stderr: 'flux-lora: eval transformer: missing --out\n' });
  });
});
