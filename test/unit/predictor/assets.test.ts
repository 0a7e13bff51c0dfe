import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_ASSETS, ensureBuiltinModel } from '../../../src/builtin/tiny-model.js';
import { ModelAssetsError, resolveModelAssets } from '../../../src/predictor/assets.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('assets-');
let builtin: string;
let n = 0;

beforeAll(async () => {
  builtin = await ensureBuiltinModel(join(tmp(), 'cache'));
});

/** A fresh folder for one layout. */
function folder(): string {
  const dir = join(tmp(), `layout-${n++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A full diffusers schnell pipeline at `target`: the built-in dev folder with the (slim) built-in schnell's transformer. */
function fullSchnell(target: string): void {
  cpSync(join(builtin, 'FLUX.1-dev'), target, { recursive: true });
  cpSync(join(builtin, 'FLUX.1-schnell'), target, { recursive: true, force: true });
}

function error(dir: string): string {
  try {
    resolveModelAssets(dir);
  } catch (e) {
    expect(e).toBeInstanceOf(ModelAssetsError);
    return (e as Error).message;
  }
  throw new Error('expected a ModelAssetsError');
}

describe('model assets under FLUX_MODEL_DIR', () => {
  it('reads a diffusers pipeline folder and tells dev from schnell by the transformer config', () => {
    const dev = resolveModelAssets(join(builtin, 'FLUX.1-dev'));
    expect(Object.keys(dev.pipelines)).toEqual(['dev']);
    expect(dev.pipelines.dev).toEqual({
      variant: 'dev',
      transformer: join(builtin, 'FLUX.1-dev', 'transformer'),
      vae: join(builtin, 'FLUX.1-dev', 'vae'),
      clip: join(builtin, 'FLUX.1-dev', 'text_encoder'),
      t5: join(builtin, 'FLUX.1-dev', 'text_encoder_2'),
      clipTokenizer: join(builtin, 'FLUX.1-dev', 'tokenizer'),
      t5Tokenizer: join(builtin, 'FLUX.1-dev', 'tokenizer_2'),
    });
    const renamed = folder();
    fullSchnell(join(renamed, 'my-model'));
    expect(Object.keys(resolveModelAssets(join(renamed, 'my-model')).pipelines)).toEqual(['schnell']);
  });

  it('serves both models from pipeline subfolders; a slim pipeline borrows the other parts from its sibling', () => {
    const both = resolveModelAssets(builtin);
    expect(Object.keys(both.pipelines).sort()).toEqual(['dev', 'schnell']);
    // The built-in model ships its safety pair at the root, as a model folder may.
    expect(both.safety).toEqual({ checker: join(builtin, 'safety_checker'), classifier: join(builtin, 'nsfw_image_detection') });
    expect(resolveModelAssets(join(builtin, 'FLUX.1-dev')).safety).toBeUndefined();
    const dir = folder();
    cpSync(join(builtin, 'FLUX.1-dev'), join(dir, 'FLUX.1-dev'), { recursive: true });
    mkdirSync(join(dir, 'FLUX.1-schnell'));
    cpSync(join(builtin, 'FLUX.1-schnell', 'transformer'), join(dir, 'FLUX.1-schnell', 'transformer'), { recursive: true });
    writeFileSync(join(dir, 'FLUX.1-schnell', 'model_index.json'), '{}');
    const assets = resolveModelAssets(dir);
    expect(assets.pipelines.schnell?.transformer).toBe(join(dir, 'FLUX.1-schnell', 'transformer'));
    expect(assets.pipelines.schnell?.vae).toBe(join(dir, 'FLUX.1-dev', 'vae'));
    expect(assets.pipelines.schnell?.t5Tokenizer).toBe(join(dir, 'FLUX.1-dev', 'tokenizer_2'));
  });

  it('reads single files as ComfyUI users keep them, preferring the fp16 T5 over fp8', () => {
    const dir = folder();
    const from = (sub: string, file: string, to: string) => cpSync(join(builtin, 'FLUX.1-dev', sub, file), join(dir, to));
    from('transformer', 'diffusion_pytorch_model.safetensors', 'flux1-dev.safetensors');
    cpSync(join(builtin, 'FLUX.1-schnell', 'transformer', 'diffusion_pytorch_model.safetensors'), join(dir, 'flux1-schnell-fp8.sft'));
    from('vae', 'diffusion_pytorch_model.safetensors', 'ae.safetensors');
    from('text_encoder', 'model.safetensors', 'clip_l.safetensors');
    from('text_encoder_2', 'model.safetensors', 't5xxl_fp8_e4m3fn.safetensors');
    from('text_encoder_2', 'model.safetensors', 't5xxl_fp16.safetensors');
    cpSync(join(builtin, 'FLUX.1-dev', 'tokenizer'), join(dir, 'tokenizer'), { recursive: true });
    cpSync(join(builtin, 'FLUX.1-dev', 'tokenizer_2'), join(dir, 'tokenizer_2'), { recursive: true });
    const assets = resolveModelAssets(dir);
    expect(assets.pipelines.dev).toMatchObject({
      transformer: join(dir, 'flux1-dev.safetensors'),
      vae: join(dir, 'ae.safetensors'),
      t5: join(dir, 't5xxl_fp16.safetensors'),
    });
    expect(assets.pipelines.schnell?.transformer).toBe(join(dir, 'flux1-schnell-fp8.sft'));
    expect(assets.pipelines.schnell?.clip).toBe(join(dir, 'clip_l.safetensors'));
  });

  it('reports an incomplete single-file folder file by file', () => {
    const dir = folder();
    cpSync(join(builtin, 'FLUX.1-dev', 'transformer', 'diffusion_pytorch_model.safetensors'), join(dir, 'flux1-dev.safetensors'));
    cpSync(join(builtin, 'FLUX.1-dev', 'vae', 'diffusion_pytorch_model.safetensors'), join(dir, 'ae.safetensors'));
    const message = error(dir);
    expect(message).toContain(`FLUX.1-dev (${join(dir, 'flux1-dev.safetensors')}) is incomplete, missing: `);
    expect(message).toContain(
      'clip_l.safetensors (the CLIP-L text encoder); t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors (the T5-XXL encoder); tokenizer/',
    );
    expect(message).toContain('tokenizer_2/tokenizer.json (the T5 tokenizer)');
    expect(message).not.toContain('ae.safetensors (the autoencoder)');
  });

  it('reports missing files inside a pipeline folder instead of borrowing around them', () => {
    const dir = folder();
    cpSync(join(builtin, 'FLUX.1-dev'), join(dir, 'FLUX.1-dev'), { recursive: true });
    fullSchnell(join(dir, 'FLUX.1-schnell'));
    rmSync(join(dir, 'FLUX.1-schnell', 'vae', 'config.json'));
    rmSync(join(dir, 'FLUX.1-schnell', 'tokenizer_2', 'tokenizer.json'));
    rmSync(join(dir, 'FLUX.1-schnell', 'transformer', 'diffusion_pytorch_model.safetensors'));
    expect(error(dir)).toBe(
      `model folder ${dir}: FLUX.1-schnell (${join(dir, 'FLUX.1-schnell')}) is incomplete, missing: transformer/*.safetensors; vae/config.json; tokenizer_2/tokenizer.json`,
    );
  });

  it('rejects two transformers of one variant, folders without a model, and missing folders', () => {
    const dir = folder();
    cpSync(join(builtin, 'FLUX.1-dev'), join(dir, 'a'), { recursive: true });
    cpSync(join(builtin, 'FLUX.1-dev'), join(dir, 'b'), { recursive: true });
    expect(error(dir)).toContain(`two FLUX.1-dev transformers: ${join(dir, 'a', 'transformer')} and ${join(dir, 'b', 'transformer')}`);
    expect(error(folder())).toContain('no FLUX.1 model found: expected a diffusers pipeline folder');
    expect(error(join(tmp(), 'nowhere'))).toBe(`model folder ${join(tmp(), 'nowhere')}: no such folder`);
    const file = join(tmp(), 'a-file');
    writeFileSync(file, 'x');
    expect(error(file)).toBe(`model folder ${file}: not a folder`);
  });
});

describe('the built-in model', () => {
  it('is installed from the shipped files, and concurrent first uses agree', async () => {
    const [a, b] = await Promise.all([ensureBuiltinModel(join(tmp(), 'c1')), ensureBuiltinModel(join(tmp(), 'c1'))]);
    expect(a).toBe(b);
    const { readFileSync } = await import('node:fs');
    for (const file of [
      'FLUX.1-dev/transformer/diffusion_pytorch_model.safetensors',
      'FLUX.1-dev/vae/diffusion_pytorch_model.safetensors',
      'FLUX.1-schnell/transformer/diffusion_pytorch_model.safetensors',
      'loras/tok.safetensors',
    ]) {
      expect(readFileSync(join(a, file)).equals(readFileSync(join(BUILTIN_ASSETS, file))), file).toBe(true);
    }
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(join(tmp(), 'c1'))).toEqual(['builtin-v5']);
  });
});
