import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraCache, LoraSourceError } from '../../../src/lora/cache.js';
import { InputValidationError } from '../../../src/predictor/inputs.js';
import { Predictor } from '../../../src/predictor/predictor.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/weights/safetensors-writer.js';
import { randomFloats } from '../../helpers/random.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('predictor-loras-');
let predictor: Predictor;
let loraDir: string;
let runs = 0;

/** The built-in transformer's width and packed channels (assets/builtin/FLUX.1-dev/transformer/config.json: 2 heads × 32, 4 × 8 latent channels). */
const HIDDEN = 64;
const PACKED = 32;

/** kohya-format LoRA on the built-in model: transformer modules and/or a CLIP (lora_te1) module. */
async function writeLora(name: string, seed: number, parts: { unet?: boolean; te?: boolean; stray?: boolean }): Promise<string> {
  const tensors: TensorToWrite[] = [];
  const add = (module: string, inF: number, outF: number, rank: number, i: number) => {
    tensors.push(
      { name: `${module}.lora_down.weight`, dtype: 'F32', shape: [rank, inF], data: randomFloats(rank * inF, seed + i, 0.5) },
      { name: `${module}.lora_up.weight`, dtype: 'F32', shape: [outF, rank], data: randomFloats(outF * rank, seed + 100 + i, 0.5) },
      { name: `${module}.alpha`, dtype: 'F32', shape: [], data: Float32Array.of(rank) },
    );
  };
  if (parts.unet) {
    add('lora_unet_double_blocks_0_img_attn_qkv', HIDDEN, 3 * HIDDEN, 4, 1);
    add('lora_unet_single_blocks_0_linear2', 5 * HIDDEN, HIDDEN, 4, 2);
    add('lora_unet_final_layer_linear', HIDDEN, PACKED, 2, 3);
  }
  if (parts.te) add('lora_te1_text_model_encoder_layers_0_mlp_fc1', 32, 64, 4, 4);
  if (parts.stray) add('lora_unet_double_blocks_7_img_attn_proj', HIDDEN, HIDDEN, 2, 5);
  const path = join(loraDir, name);
  await writeSafetensors(path, tensors);
  return path;
}

beforeAll(async () => {
  loraDir = join(tmp(), 'loras');
  mkdirSync(loraDir);
  await writeLora('a.safetensors', 10, { unet: true });
  await writeLora('b.safetensors', 20, { unet: true, te: true });
  await writeLora('te.safetensors', 30, { te: true });
  await writeLora('partial.safetensors', 40, { unet: true, stray: true });
  await writeSafetensors(join(loraDir, 'nothing.safetensors'), [{ name: 'encoder.block.0.weight', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) }]);
  writeFileSync(join(loraDir, 'not-a-lora.safetensors'), 'hello');
  const fetcher = new LoraCache({ dir: join(tmp(), 'lora-cache'), localRoot: loraDir });
  predictor = await Predictor.create({ cacheDir: join(tmp(), 'cache'), loraFetcher: fetcher });
});
afterAll(async () => {
  await predictor.close();
});

const base = { prompt: 'a photo of TOK', seed: 3, aspect_ratio: 'custom', width: 256, height: 256, num_inference_steps: 3 };
const lora = (name: string) => join(loraDir, name);

async function image(input: Record<string, unknown>, on: Predictor = predictor): Promise<{ bytes: Buffer; logs: string[] }> {
  const outputDir = join(tmp(), `out-${runs++}`);
  const logs: string[] = [];
  const result = await on.predict({ ...base, ...input }, { outputDir, log: (l) => logs.push(l) });
  return { bytes: readFileSync(result.files[0] as string), logs };
}

async function failure(input: Record<string, unknown>): Promise<Error> {
  const outputDir = join(tmp(), `out-${runs++}`);
  mkdirSync(outputDir);
  const error = await predictor.predict({ ...base, ...input }, { outputDir }).then(
    () => new Error('expected the prediction to fail'),
    (e: unknown) => e as Error,
  );
  expect(readdirSync(outputDir)).toEqual([]);
  return error;
}

describe('LoRAs in predictions', () => {
  it('change the image, apply lora_scale once (sign kept), and strength 0 gives the base image back', async () => {
    const plain = await image({});
    const withA = await image({ replicate_weights: lora('a.safetensors'), lora_scale: 0.8 });
    expect(withA.bytes.equals(plain.bytes)).toBe(false);
    expect(withA.logs).toEqual(
      expect.arrayContaining([
        'Loaded LoRA replicate_weights (kohya format, strength 0.8): 9 tensors applied (9 to the transformer)',
        expect.stringMatching(/^Loaded LoRAs in \d+\.\d\ds$/),
      ]),
    );
    const negative = await image({ replicate_weights: lora('a.safetensors'), lora_scale: -0.8 });
    expect(negative.bytes.equals(withA.bytes)).toBe(false);
    expect((await image({ replicate_weights: lora('a.safetensors'), lora_scale: 0 })).bytes.equals(plain.bytes)).toBe(true);
    expect((await image({})).bytes.equals(plain.bytes)).toBe(true);
  });

  it('switch and change strength between predictions without stale state (same bytes as a fresh predictor)', async () => {
    const a = await image({ replicate_weights: lora('a.safetensors'), lora_scale: 0.8 });
    const b = await image({ replicate_weights: lora('b.safetensors'), lora_scale: 0.8 });
    expect(b.bytes.equals(a.bytes)).toBe(false);
    const strengthOnly = await image({ replicate_weights: lora('b.safetensors'), lora_scale: 0.3 });
    expect((await image({ replicate_weights: lora('a.safetensors'), lora_scale: 0.8 })).bytes.equals(a.bytes)).toBe(true);
    const fresh = await Predictor.create({
      cacheDir: join(tmp(), 'cache'),
      loraFetcher: new LoraCache({ dir: join(tmp(), 'lora-cache'), localRoot: loraDir }),
    });
    try {
      expect((await image({ replicate_weights: lora('b.safetensors'), lora_scale: 0.3 }, fresh)).bytes.equals(strengthOnly.bytes)).toBe(true);
    } finally {
      await fresh.close();
    }
  });

  it('apply extra_lora alone, the loras list like the named inputs, and go_fast multiplies every strength by 1.5', async () => {
    const viaMain = await image({ replicate_weights: lora('a.safetensors'), lora_scale: 0.5 });
    const viaExtra = await image({ extra_lora: lora('a.safetensors'), extra_lora_scale: 0.5 });
    const viaList = await image({ loras: [{ weights: lora('a.safetensors'), scale: 0.5 }] });
    expect(viaExtra.bytes.equals(viaMain.bytes)).toBe(true);
    expect(viaList.bytes.equals(viaMain.bytes)).toBe(true);
    const fast = await image({
      go_fast: true,
      replicate_weights: lora('a.safetensors'),
      lora_scale: 0.4,
      extra_lora: lora('b.safetensors'),
      extra_lora_scale: 0.6,
      loras: [{ weights: lora('te.safetensors'), scale: -1 }],
    });
    expect(fast.logs.filter((l) => l.startsWith('Loaded LoRA ')).map((l) => /^Loaded LoRA (\S+) .*strength ([-\d.]+)\)/.exec(l)?.slice(1))).toEqual([
      ['replicate_weights', '0.6'],
      ['extra_lora', '0.9'],
      ['loras[0]', '-1.5'],
    ]);
  });

  it('apply text-encoder LoRAs to CLIP, and forget them when they are gone', async () => {
    const plain = await image({});
    const te = await image({ replicate_weights: lora('te.safetensors') });
    expect(te.logs).toContain('Loaded LoRA replicate_weights (kohya format, strength 1): 3 tensors applied (3 to the text encoder)');
    expect(te.bytes.equals(plain.bytes)).toBe(false);
    expect((await image({})).bytes.equals(plain.bytes)).toBe(true);
  });

  it('fail loudly when nothing applies, warn by name when some tensors do not, and recover for the next prediction', async () => {
    const none = await failure({ replicate_weights: lora('nothing.safetensors') });
    expect(none).toBeInstanceOf(InputValidationError);
    expect((none as InputValidationError).problems).toEqual([
      {
        input: 'replicate_weights',
        message: expect.stringMatching(/^no tensor of this LoRA applies to FLUX\.1 or its CLIP text encoder \(.*"encoder\.block\.0\.weight"\)$/),
      },
    ]);
    const partial = await image({ extra_lora: lora('partial.safetensors') });
    expect(partial.logs).toContain(
      'Warning: LoRA extra_lora: 3 tensor(s) not applied: lora_unet_double_blocks_7_img_attn_proj.lora_down.weight, lora_unet_double_blocks_7_img_attn_proj.lora_up.weight, lora_unet_double_blocks_7_img_attn_proj.alpha',
    );
    const bad = await failure({ extra_lora: lora('not-a-lora.safetensors') });
    expect(bad.message).toMatch(/extra_lora/);
    const missing = await failure({ replicate_weights: lora('missing.safetensors') });
    expect(missing).toBeInstanceOf(LoraSourceError);
    expect(missing.message).toMatch(/^input "replicate_weights": /);
    const outside = await failure({ replicate_weights: '/etc/hostname' });
    expect(outside.message).toMatch(/^input "replicate_weights": /);
    const a = await image({ replicate_weights: lora('a.safetensors'), lora_scale: 0.8 });
    expect(a.logs.some((l) => l.startsWith('Loaded LoRA replicate_weights'))).toBe(true);
  });
});
