import { describe, expect, it } from 'vitest';
import { ClipTextEncoder, poolIndices } from '../../../src/models/text/clip-text.js';
import { TextEncoderInputError } from '../../../src/models/text/checkpoint.js';
import { int64Tensor } from '../../../src/onnx/tensor-data.js';
import { SafetensorsFile } from '../../../src/weights/safetensors.js';
import { expectAllClose, goldenPath } from '../../helpers/golden.js';
import { useWorker } from '../../helpers/run-graph.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/weights/safetensors-writer.js';
import { join } from 'node:path';

const worker = useWorker();
const tmp = useTempDir('clip-text-');

describe('CLIP text encoder', () => {
  it('matches the golden last hidden states and pooled outputs within atol 1e-5 + rtol 1e-5', async () => {
    const clip = await ClipTextEncoder.load(worker(), goldenPath('clip_weights.safetensors'));
    const cases = await SafetensorsFile.open(goldenPath('clip_cases.safetensors'));
    const ids = int64Tensor(cases.info('case0.input_ids').shape, await cases.readInt64('case0.input_ids'));
    expect(poolIndices(ids)).toEqual(Array.from(await cases.readInt64('case0.pool_index'), Number));
    const { lastHiddenState, pooled } = await clip.encode(ids);
    expectAllClose(lastHiddenState.data as Float32Array, await cases.readFloat32('case0.expected_last_hidden_state'), 1e-5, 1e-5, 'last hidden state');
    expectAllClose(pooled.data as Float32Array, await cases.readFloat32('case0.expected_pooler_output'), 1e-5, 1e-5, 'pooled');
    await expect(clip.encode(int64Tensor([1, 17], new Array(17).fill(1)))).rejects.toThrow(
      'input "input_ids" has 17 tokens, more than the 16 positions of this CLIP',
    );
    await expect(clip.encode(int64Tensor([1, 2], [1, -1]))).rejects.toThrow(TextEncoderInputError);
    await clip.release();
  });

  it('loads files that carry the int64 position_ids buffer older transformers saved', async () => {
    const golden = await SafetensorsFile.open(goldenPath('clip_weights.safetensors'));
    const tensors: TensorToWrite[] = await Promise.all(
      golden.names().map(async (name) => ({ name, dtype: 'F32' as const, shape: golden.info(name).shape, data: await golden.readFloat32(name) })),
    );
    tensors.push({ name: 'text_model.embeddings.position_ids', dtype: 'I64', shape: [1, 16], data: BigInt64Array.from({ length: 16 }, (_, i) => BigInt(i)) });
    const path = join(tmp(), 'clip-with-position-ids.safetensors');
    await writeSafetensors(path, tensors, golden.metadata);
    const clip = await ClipTextEncoder.load(worker(), path);
    const cases = await SafetensorsFile.open(goldenPath('clip_cases.safetensors'));
    const ids = int64Tensor(cases.info('case0.input_ids').shape, await cases.readInt64('case0.input_ids'));
    expectAllClose((await clip.encode(ids)).pooled.data as Float32Array, await cases.readFloat32('case0.expected_pooler_output'), 1e-5, 1e-5, 'pooled');
    await clip.release();
  });
});
