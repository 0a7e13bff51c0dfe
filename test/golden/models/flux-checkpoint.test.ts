import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FluxCheckpointError, openFluxCheckpoint } from '../../../src/models/flux/checkpoint.js';
import { FluxConfigError } from '../../../src/models/flux/config.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/weights/safetensors-writer.js';
import { goldenPath } from '../../helpers/golden.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('flux-checkpoint-');

/** Rewrites a golden checkpoint through `edit`, which may drop, rename, reshape or add tensors. */
async function variant(
  name: string,
  source: string,
  edit: (tensors: TensorToWrite[]) => TensorToWrite[],
  metadata?: (m: Record<string, string>) => Record<string, string>,
): Promise<string> {
  const file = await SafetensorsFile.open(goldenPath(source));
  const tensors: TensorToWrite[] = [];
  for (const n of file.names()) {
    const info = file.info(n);
    tensors.push({ name: n, dtype: info.dtype, shape: info.shape, data: await file.readBytes(n) });
  }
  const path = join(tmp(), name);
  await writeSafetensors(path, edit(tensors), metadata ? metadata({ ...file.metadata }) : file.metadata);
  return path;
}

async function checkpointError(path: string): Promise<Error> {
  try {
    await openFluxCheckpoint(path);
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the checkpoint to be rejected');
}

describe('FLUX checkpoint loading', () => {
  it('infers the config from tensor shapes when a BFL file has no metadata (RoPE axes need 128-wide heads)', async () => {
    const path = await variant(
      'bare.safetensors',
      'transformer_A_bfl.safetensors',
      (t) => t,
      () => ({}),
    );
    const error = await checkpointError(path);
    expect(error).toBeInstanceOf(FluxConfigError);
    expect(error.message).toMatch(/config inferred from tensor shapes.*RoPE axes dims/);
  });

  it('reads a diffusers folder with config.json and a sharded index', async () => {
    const folder = join(tmp(), 'pipeline', 'transformer');
    mkdirSync(folder, { recursive: true });
    const file = await SafetensorsFile.open(goldenPath('transformer_B_diffusers.safetensors'));
    const names = file.names();
    const shards = [names.slice(0, 50), names.slice(50)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const shardName = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
      const tensors: TensorToWrite[] = [];
      for (const n of shard) {
        const info = file.info(n);
        tensors.push({ name: n, dtype: info.dtype, shape: info.shape, data: await file.readBytes(n) });
        weightMap[n] = shardName;
      }
      await writeSafetensors(join(folder, shardName), tensors);
    }
    writeFileSync(join(folder, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    writeFileSync(join(folder, 'config.json'), file.metadata.config as string);
    const checkpoint = await openFluxCheckpoint(join(tmp(), 'pipeline'));
    expect(checkpoint.layout).toBe('diffusers');
    expect(checkpoint.config.guidanceEmbed).toBe(false);
    for (const name of ['img_in.weight', 'single_blocks.1.linear1.mlp.weight']) {
      const { info } = checkpoint.locate(name);
      expect(info.file).toBe(join(folder, weightMap[info.name] as string));
    }
    expect(new Set(Object.values(weightMap)).size).toBe(2);
  });

  it('accepts BFL keys under a model.diffusion_model. prefix and ignores the other components of a full checkpoint', async () => {
    const path = await variant('prefixed.safetensors', 'transformer_B_bfl.safetensors', (tensors) => [
      ...tensors.map((t) => ({ ...t, name: `model.diffusion_model.${t.name}` })),
      { name: 'vae.decoder.conv_in.weight', dtype: 'F32', shape: [2], data: new Float32Array(2) },
    ]);
    const checkpoint = await openFluxCheckpoint(path);
    expect(checkpoint.prefix).toBe('model.diffusion_model.');
    expect(checkpoint.locate('double_blocks.0.img_attn.k.weight')).toMatchObject({ rows: { start: 32, count: 32 } });
  });

  it('rejects missing, unexpected and mis-shaped tensors, naming them', async () => {
    const missing = await variant('missing.safetensors', 'transformer_A_bfl.safetensors', (t) =>
      t.filter((x) => x.name !== 'double_blocks.1.txt_mlp.2.weight' && x.name !== 'final_layer.linear.bias'),
    );
    expect((await checkpointError(missing)).message).toMatch(/missing 2 tensor\(s\): "double_blocks\.1\.txt_mlp\.2\.weight", "final_layer\.linear\.bias"/);
    const extra = await variant('extra.safetensors', 'transformer_A_bfl.safetensors', (t) => [
      ...t,
      { name: 'double_blocks.2.img_mod.lin.weight', dtype: 'F32', shape: [1], data: new Float32Array(1) },
    ]);
    const extraError = await checkpointError(extra);
    expect(extraError).toBeInstanceOf(FluxCheckpointError);
    expect(extraError.message).toMatch(/unexpected 1 tensor\(s\): "double_blocks\.2\.img_mod\.lin\.weight"/);
    const reshaped = await variant('reshaped.safetensors', 'transformer_A_bfl.safetensors', (t) =>
      t.map((x) => (x.name === 'single_blocks.0.linear1.weight' ? { ...x, shape: [96, 32], data: new Float32Array(96 * 32) } : x)),
    );
    expect((await checkpointError(reshaped)).message).toMatch(
      /wrong shape for 1 tensor\(s\): "single_blocks\.0\.linear1\.weight" is \[96,32\], expected \[224,32\]/,
    );
  });

  it('rejects files that are not FLUX transformers and paths that do not exist', async () => {
    expect((await checkpointError(goldenPath('vae_bfl.safetensors'))).message).toMatch(/not a FLUX\.1 transformer checkpoint/);
    expect((await checkpointError(join(tmp(), 'nope.safetensors'))).message).toMatch(/no such file or folder/);
    const integer = await variant('ints.safetensors', 'transformer_B_bfl.safetensors', (t) =>
      t.map((x) => (x.name === 'img_in.bias' ? { ...x, dtype: 'I32' as const, data: new Int32Array(32) } : x)),
    );
    expect((await checkpointError(integer)).message).toMatch(/non-float tensor\(s\): "img_in\.bias" \(I32\)/);
  });
});
