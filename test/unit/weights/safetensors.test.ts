import { readdirSync, readFileSync, writeFileSync, mkdirSync, truncateSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { f32ToBf16, f32ToF16, type SafetensorsDType } from '../../../src/weights/dtypes.js';
import { openTensorSource, SafetensorsError, SafetensorsFile } from '../../../src/weights/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../../src/weights/safetensors-writer.js';
import { randomFloats } from '../../helpers/random.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('safetensors-');

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('safetensors round trip', () => {
  it('writes and reads every dtype, scalars, empty tensors and metadata', async () => {
    const floats = Float32Array.of(1.5, -2.25, 0, 65504, 2 ** -14, -0.1);
    const tensors: TensorToWrite[] = [
      { name: 'f32', dtype: 'F32', shape: [2, 3], data: floats },
      { name: 'f16', dtype: 'F16', shape: [6], data: f32ToF16(floats) },
      { name: 'bf16', dtype: 'BF16', shape: [3, 2], data: f32ToBf16(floats) },
      { name: 'e4m3', dtype: 'F8_E4M3', shape: [3], data: Uint8Array.of(0x38, 0xb8, 0x7e) },
      { name: 'e5m2', dtype: 'F8_E5M2', shape: [2], data: Uint8Array.of(0x3c, 0x7c) },
      { name: 'u8', dtype: 'U8', shape: [2], data: Uint8Array.of(0, 255) },
      { name: 'i8', dtype: 'I8', shape: [2], data: Int8Array.of(-128, 127) },
      { name: 'i16', dtype: 'I16', shape: [2], data: Int16Array.of(-32768, 7) },
      { name: 'i32', dtype: 'I32', shape: [1, 2], data: Int32Array.of(-5, 2 ** 30) },
      { name: 'i64', dtype: 'I64', shape: [3], data: BigInt64Array.of(-1n, 2n ** 40n, 7n) },
      { name: 'bool', dtype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) },
      { name: 'scalar', dtype: 'F32', shape: [], data: Float32Array.of(12) },
      { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    ];
    const path = join(tmp(), 'all.safetensors');
    await writeSafetensors(path, tensors, { format: 'pt', note: 'ü' });
    const file = await SafetensorsFile.open(path);
    expect(file.metadata).toEqual({ format: 'pt', note: 'ü' });
    expect(file.names().sort()).toEqual(tensors.map((t) => t.name).sort());
    const headerLength = Number(readFileSync(path).readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    for (const t of tensors) {
      const info = file.info(t.name);
      expect([info.dtype, info.shape]).toEqual([t.dtype, t.shape]);
      const view = t.data as ArrayBufferView;
      expect(Buffer.from(await file.readBytes(t.name)).equals(Buffer.from(view.buffer, view.byteOffset, view.byteLength))).toBe(true);
      expect(info.offset + info.byteLength).toBeLessThanOrEqual(readFileSync(path).length);
    }
    const expectedF16 = Float32Array.from(floats, (v, i) => (i === 5 ? -0.0999755859375 : v));
    expect(await file.readFloat32('f32')).toEqual(floats);
    expect(await file.readFloat32('f16')).toEqual(expectedF16);
    expect(await file.readFloat32('bf16')).toEqual(Float32Array.of(1.5, -2.25, 0, 65536, 2 ** -14, -0.10009765625));
    expect(await file.readFloat32('e4m3')).toEqual(Float32Array.of(1, -1, 448));
    expect(await file.readFloat32('e5m2')).toEqual(Float32Array.of(1, Infinity));
    expect(await file.readFloat32('i8')).toEqual(Float32Array.of(-128, 127));
    expect(await file.readFloat32('i64')).toEqual(Float32Array.of(-1, 2 ** 40, 7));
    expect(await file.readInt64('i64')).toEqual(BigInt64Array.of(-1n, 2n ** 40n, 7n));
    expect(await file.readInt64('i16')).toEqual(BigInt64Array.of(-32768n, 7n));
    expect(await file.readFloat32('scalar')).toEqual(Float32Array.of(12));
    expect(await file.readFloat32('empty')).toEqual(new Float32Array(0));
    await expect(file.readInt64('f32')).rejects.toThrow(SafetensorsError);
    expect(() => file.info('nope')).toThrow(`${path}: tensor "nope": no such tensor in this file`);
  });

  it('streams tensors larger than any chunk and rejects wrong byte counts without leaving files', async () => {
    const dir = join(tmp(), 'stream');
    mkdirSync(dir);
    const values = randomFloats(100_000, 3);
    const path = join(dir, 'big.safetensors');
    await writeSafetensors(path, [
      {
        name: 'big',
        dtype: 'F32',
        shape: [100_000],
        data: async function* () {
          for (let i = 0; i < values.length; i += 7_001) {
            const part = values.slice(i, i + 7_001);
            yield new Uint8Array(part.buffer);
          }
        },
      },
    ]);
    expect(await (await SafetensorsFile.open(path)).readFloat32('big')).toEqual(values);
    const short = join(dir, 'short.safetensors');
    const error = await rejection(writeSafetensors(short, [{ name: 'w', dtype: 'F32', shape: [4], data: new Float32Array(3) }]));
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toBe(`${short}: tensor "w": F32[4] needs 16 bytes, got 12`);
    const long = join(dir, 'long.safetensors');
    await expect(writeSafetensors(long, [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(2) }])).rejects.toThrow(/needs 4 bytes, got 8 or more/);
    await expect(
      writeSafetensors(long, [
        { name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) },
        { name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) },
      ]),
    ).rejects.toThrow(/duplicate tensor name/);
    await expect(writeSafetensors(long, [{ name: '__metadata__', dtype: 'F32', shape: [1], data: new Float32Array(1) }])).rejects.toThrow(
      /invalid tensor name/,
    );
    await expect(writeSafetensors(long, [{ name: 'x', dtype: 'F32', shape: [-1], data: new Float32Array(1) }])).rejects.toThrow(/invalid shape/);
    const failing = async function* (): AsyncIterable<Uint8Array> {
      yield new Uint8Array(4);
      throw new Error('source went away');
    };
    await expect(writeSafetensors(long, [{ name: 'x', dtype: 'F32', shape: [2], data: failing }])).rejects.toThrow(/source went away/);
    expect(readdirSync(dir).sort()).toEqual(['big.safetensors']);
  });

  it('treats a sharded checkpoint with an index as one source and rejects each index defect', async () => {
    const dir = join(tmp(), 'sharded');
    mkdirSync(dir);
    await writeSafetensors(join(dir, 'a.safetensors'), [{ name: 'x', dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }]);
    await writeSafetensors(join(dir, 'b.safetensors'), [
      { name: 'y', dtype: 'BF16', shape: [1], data: f32ToBf16(Float32Array.of(3)) },
      { name: 'z', dtype: 'I64', shape: [1], data: BigInt64Array.of(4n) },
    ]);
    const index = (weightMap: Record<string, string>, name = 'model.safetensors.index.json') => {
      const p = join(dir, name);
      writeFileSync(p, JSON.stringify({ metadata: { total_size: 12, note: 'n' }, weight_map: weightMap }));
      return p;
    };
    const good = index({ x: 'a.safetensors', y: 'b.safetensors', z: 'b.safetensors' });
    for (const source of [await openTensorSource(good), await openTensorSource(dir)]) {
      expect(source.names().sort()).toEqual(['x', 'y', 'z']);
      expect(source.metadata).toEqual({ note: 'n' });
      expect(await source.readFloat32('y')).toEqual(Float32Array.of(3));
      expect(source.info('x').file).toBe(join(dir, 'a.safetensors'));
      expect(await source.readInt64('z')).toEqual(BigInt64Array.of(4n));
    }
    const defects: [Record<string, string>, RegExp][] = [
      [{ x: 'a.safetensors', y: 'b.safetensors', z: 'c.safetensors' }, /c\.safetensors: no such file/],
      [{ x: 'b.safetensors', y: 'b.safetensors', z: 'b.safetensors' }, /tensor "x": the index places it in "b\.safetensors", which does not hold it/],
      [{ x: 'a.safetensors', y: 'b.safetensors' }, /b\.safetensors: tensor "z": tensor is not listed in the index/],
      [{ x: '../outside.safetensors' }, /tensor "x": shard "\.\.\/outside\.safetensors" lies outside the index's folder/],
    ];
    for (const [weightMap, message] of defects) {
      const error = await rejection(openTensorSource(index(weightMap, 'bad.safetensors.index.json')));
      expect(error).toBeInstanceOf(SafetensorsError);
      expect((error as Error).message).toMatch(message);
    }
    writeFileSync(join(dir, 'broken.safetensors.index.json'), '{"weight_map": [');
    await expect(openTensorSource(join(dir, 'broken.safetensors.index.json'))).rejects.toThrow(/cannot read the index/);
    await expect(openTensorSource(dir)).rejects.toThrow(/found 3 index file\(s\) and 2 safetensors file\(s\)/);
    await expect(openTensorSource(join(dir, 'missing'))).rejects.toThrow(/missing: no such file/);
  });
});

/** Deterministic mutations of a valid file, each of which makes it invalid. */
function invalidMutations(valid: Buffer, headerLength: number): { label: string; bytes: Buffer }[] {
  const header = JSON.parse(valid.subarray(8, 8 + headerLength).toString()) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  const data = valid.subarray(8 + headerLength);
  const withHeader = (h: unknown, raw?: string) => {
    const json = Buffer.from(raw ?? JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, json, data]);
  };
  const withLength = (n: bigint) => {
    const copy = Buffer.from(valid);
    copy.writeBigUInt64LE(n, 0);
    return copy;
  };
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const out: { label: string; bytes: Buffer }[] = [];
  const edit = (label: string, f: (h: typeof header, name: string) => unknown) => {
    for (const name of names) {
      const h = structuredClone(header);
      out.push({ label: `${label} (${name})`, bytes: withHeader(f(h, name) ?? h) });
    }
  };
  for (let n = 0; n < 48; n++) {
    out.push({ label: `header length ${headerLength + n + 1}`, bytes: withLength(BigInt(headerLength + n + 1 + data.length)) });
    out.push({ label: `header length ${n}`, bytes: withLength(BigInt(n)) });
  }
  out.push({ label: 'huge header length', bytes: withLength(2n ** 63n) });
  out.push({ label: 'header over the cap', bytes: withLength(BigInt(200 * 1024 * 1024)) });
  for (let n = 0; n < 8; n++) out.push({ label: `file of ${n} bytes`, bytes: valid.subarray(0, n) });
  for (let cut = 1; cut < headerLength + 8; cut += 3) out.push({ label: `truncated header at ${cut}`, bytes: valid.subarray(0, cut) });
  for (let cut = 1; cut <= data.length; cut += Math.max(1, Math.floor(data.length / 40))) {
    out.push({ label: `data truncated by ${cut}`, bytes: valid.subarray(0, valid.length - cut) });
  }
  for (let extra = 1; extra <= 48; extra++) out.push({ label: `${extra} trailing bytes`, bytes: Buffer.concat([valid, Buffer.alloc(extra, 7)]) });
  const json = valid
    .subarray(8, 8 + headerLength)
    .toString()
    .trimEnd();
  for (let cut = 1; cut < json.length; cut += 2) out.push({ label: `JSON cut at ${cut}`, bytes: withHeader(null, json.slice(0, cut)) });
  // Every structural character of the JSON replaced: always a syntax error. Every digit of a shape
  // or data_offsets array changed: the sizes no longer match.
  let inArray = false;
  [...json].forEach((ch, i) => {
    for (const replacement of ['x', '}', '\\']) {
      if ('{}[]":,'.includes(ch) && ch !== replacement) {
        out.push({ label: `JSON char ${i} '${ch}' → '${replacement}'`, bytes: withHeader(null, json.slice(0, i) + replacement + json.slice(i + 1)) });
      }
    }
    if (ch === '[' || ch === ']') inArray = ch === '[';
    if (inArray && /[0-9]/.test(ch))
      out.push({ label: `digit ${i} changed`, bytes: withHeader(null, json.slice(0, i) + String((Number(ch) + 1) % 10) + json.slice(i + 1)) });
  });
  for (const raw of ['[]', '"x"', '42', 'null', 'true', '{"a": 1}', '{"a": null}', '{"a": []}', '{"__metadata__": []}', '{"__metadata__": {"k": 1}}']) {
    out.push({ label: `header ${raw}`, bytes: withHeader(null, raw) });
  }
  out.push({ label: 'bad UTF-8', bytes: withHeader(null, json.replace('"', '"\uFFFD')).fill(0xff, 9, 10) });
  edit('unknown dtype', (h, n) => void ((h[n] as { dtype: string }).dtype = 'F64'));
  edit('lowercase dtype', (h, n) => void ((h[n] as { dtype: string }).dtype = 'f32'));
  edit('dtype number', (h, n) => void ((h[n] as unknown as { dtype: number }).dtype = 1));
  edit('shape not array', (h, n) => void ((h[n] as unknown as { shape: string }).shape = '2'));
  edit('negative dim', (h, n) => void ((h[n] as { shape: number[] }).shape = [-1]));
  edit('fractional dim', (h, n) => void ((h[n] as { shape: number[] }).shape = [1.5]));
  edit('huge dim', (h, n) => void ((h[n] as { shape: number[] }).shape = [2 ** 60, 2 ** 60]));
  edit('extra dim', (h, n) => void (h[n] as { shape: number[] }).shape.push(3));
  edit('offsets reversed', (h, n) => void (h[n] as { data_offsets: number[] }).data_offsets.reverse());
  edit(
    'offsets shifted',
    (h, n) => void ((h[n] as { data_offsets: number[] }).data_offsets = (h[n] as { data_offsets: number[] }).data_offsets.map((o) => o + 4)),
  );
  edit('offsets past end', (h, n) => void ((h[n] as { data_offsets: number[] }).data_offsets[1] = data.length + 8));
  edit('offsets missing', (h, n) => void delete (h[n] as Partial<{ data_offsets: number[] }>).data_offsets);
  edit('offsets one value', (h, n) => void ((h[n] as { data_offsets: number[] }).data_offsets = [0]));
  edit('offsets string', (h, n) => void ((h[n] as unknown as { data_offsets: string[] }).data_offsets = ['0', '4']));
  edit('unknown field', (h, n) => void ((h[n] as unknown as Record<string, number>).extra = 1));
  edit('entry not object', (h, n) => void ((h as Record<string, unknown>)[n] = [1, 2]));
  edit('removed tensor', (h, n) => void delete (h as Record<string, unknown>)[n]);
  edit('overlap', (h, n) => {
    const other = names.find((o) => o !== n) as string;
    (h[n] as { data_offsets: number[] }).data_offsets = [...(h[other] as { data_offsets: number[] }).data_offsets];
    (h[n] as { shape: number[] }).shape = [...(h[other] as { shape: number[] }).shape];
    (h[n] as { dtype: string }).dtype = (h[other] as { dtype: string }).dtype;
  });
  return out;
}

describe('safetensors validation fuzz', () => {
  it('ends every one of ≥ 1000 deterministic invalid mutations in a SafetensorsError, and random byte flips in success or one', async () => {
    const dir = join(tmp(), 'fuzz');
    mkdirSync(dir);
    const base = join(dir, 'base.safetensors');
    const tensors: TensorToWrite[] = (['F32', 'BF16', 'I64', 'U8', 'F16', 'I32'] as SafetensorsDType[]).map((dtype, i) => ({
      name: `t${i}`,
      dtype,
      shape: [3, i + 1],
      // Bytes with small values: valid in every dtype (I64 values stay far below 2^53).
      data: new Uint8Array(3 * (i + 1) * { F32: 4, BF16: 2, I64: 8, U8: 1, F16: 2, I32: 4 }[dtype as 'F32']).map((_, j) =>
        j % 4 === 0 ? (j * 37 + i) & 0x3f : 0,
      ),
    }));
    await writeSafetensors(base, tensors, { kind: 'fuzz' });
    const valid = readFileSync(base);
    const headerLength = Number(valid.readBigUInt64LE(0));
    const mutations = invalidMutations(valid, headerLength);
    const path = join(dir, 'mutant.safetensors');
    const readAll = async () => {
      const f = await SafetensorsFile.open(path);
      for (const n of f.names()) await f.readFloat32(n);
    };
    const unexpected: string[] = [];
    for (const m of mutations) {
      writeFileSync(path, m.bytes);
      const error = await rejection(readAll()).catch(() => null);
      if (!(error instanceof SafetensorsError)) unexpected.push(`${m.label}: ${String(error)}`);
    }
    expect(unexpected).toEqual([]);
    // Random single-byte changes anywhere: either still valid, or a SafetensorsError.
    let seed = 12345;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    let flips = 0;
    for (let i = 0; i < 400; i++) {
      const bytes = Buffer.from(valid);
      bytes[next() % bytes.length] = next() & 0xff;
      writeFileSync(path, bytes);
      try {
        await readAll();
      } catch (error) {
        if (!(error instanceof SafetensorsError)) unexpected.push(`flip ${i}: ${String(error)}`);
        flips++;
      }
    }
    expect(unexpected).toEqual([]);
    expect(mutations.length).toBeGreaterThanOrEqual(1000);
    expect(flips).toBeGreaterThan(0);
  });

  it('reports a file changed after it was opened, and missing or folder paths', async () => {
    const path = join(tmp(), 'shrinking.safetensors');
    await writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [64], data: new Float32Array(64) }]);
    const file = await SafetensorsFile.open(path);
    truncateSync(path, 100);
    await expect(file.readFloat32('w')).rejects.toThrow(`${path}: tensor "w": file ends before the tensor's data`);
    appendFileSync(path, Buffer.alloc(400));
    await expect(SafetensorsFile.open(join(tmp(), 'absent.safetensors'))).rejects.toThrow(/absent\.safetensors: no such file/);
    await expect(SafetensorsFile.open(tmp())).rejects.toThrow(/is a folder, not a file/);
  });
});
