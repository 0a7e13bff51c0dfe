import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../../src/images/decode.js';
import { encodeImage, outputName } from '../../../src/images/encode.js';
import { ImageInputError } from '../../../src/images/errors.js';
import { sizeForInputImage } from '../../../src/images/sizing.js';
import { DEFAULT_IMAGE_SOURCE, readImageSource } from '../../../src/images/source.js';
import { imageToTensor, maskToBinary, resizeLanczos, tensorToImage } from '../../../src/images/tensors.js';
import { bombPng } from '../../helpers/hostile-files.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('images-');

const rgb = (w: number, h: number, f: (x: number, y: number) => [number, number, number]) =>
  sharp(Buffer.from(Array.from({ length: w * h }, (_, i) => f(i % w, Math.floor(i / w))).flat()), { raw: { width: w, height: h, channels: 3 } });

async function inputError(promise: Promise<unknown>): Promise<ImageInputError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ImageInputError);
    return error as ImageInputError;
  }
  throw new Error('expected an ImageInputError');
}

describe('generation size from an input image (reference §7.2)', () => {
  it.each([
    [1024, 1024, 1024, 1024],
    [1000, 750, 1008, 752],
    [2000, 1500, 1440, 1088],
    [4032, 3024, 1440, 1088],
    [3024, 4032, 1088, 1440],
    [1920, 1080, 1440, 816],
    [1080, 1920, 816, 1440],
    [512, 512, 512, 512],
    [100, 60, 112, 64],
    [1441, 1441, 1440, 1440],
    [1500, 1499, 1440, 1440],
    [3000, 1000, 1440, 480],
    [5000, 200, 1440, 64],
    [2496, 1222, 1440, 704],
  ])('%i×%i → %i×%i', (w, h, ow, oh) => {
    expect(sizeForInputImage(w, h)).toEqual({ width: ow, height: oh });
  });
});

describe('masks (docs/reference-behaviour.md §7.10)', () => {
  it.each([
    [[255, 255, 255], 1],
    [[0, 0, 0], 0],
    [[128, 128, 128], 1],
    [[127, 127, 127], 0],
    [[255, 0, 0], 0],
    [[0, 255, 0], 1],
  ] as [number[], number][])('pixel %j → %i', (pixel, expected) => {
    expect(Array.from(maskToBinary({ width: 1, height: 1, data: Uint8Array.from(pixel) }, 1, 1))).toEqual([expected]);
  });

  it('resizes a mask of another size with nearest sampling instead of rejecting it', () => {
    // 2×1 mask (left white, right black) stretched to 4×2.
    const mask = { width: 2, height: 1, data: Uint8Array.of(255, 255, 255, 0, 0, 0) };
    expect(Array.from(maskToBinary(mask, 4, 2))).toEqual([1, 1, 0, 0, 1, 1, 0, 0]);
  });
});

describe('decoding input images', () => {
  it('decodes png, jpeg, webp and the first frame of a gif', async () => {
    const base = rgb(8, 6, (x, y) => [x * 30, y * 40, 200]);
    for (const encoded of [
      await base.clone().png().toBuffer(),
      await base.clone().jpeg({ quality: 95 }).toBuffer(),
      await base.clone().webp({ lossless: true }).toBuffer(),
      await base.clone().gif().toBuffer(),
    ]) {
      const image = await decodeImage('image', encoded);
      expect([image.width, image.height, image.data.length]).toEqual([8, 6, 8 * 6 * 3]);
    }
    const png = await decodeImage('image', await base.clone().png().toBuffer());
    expect(Array.from(png.data.subarray(0, 6))).toEqual([0, 0, 200, 30, 0, 200]);
  });

  it('applies EXIF orientation and flattens transparency onto white', async () => {
    const rotated = await rgb(4, 2, () => [10, 20, 30])
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const image = await decodeImage('image', rotated);
    expect([image.width, image.height]).toEqual([2, 4]);
    const transparent = await sharp(Buffer.from([255, 0, 0, 0, 0, 0, 255, 255]), { raw: { width: 2, height: 1, channels: 4 } })
      .png()
      .toBuffer();
    expect(Array.from((await decodeImage('image', transparent)).data)).toEqual([255, 255, 255, 0, 0, 255]);
  });

  it('names the input for every bad image', async () => {
    const png = await rgb(16, 16, () => [1, 2, 3])
      .png()
      .toBuffer();
    expect((await inputError(decodeImage('mask', new Uint8Array(0)))).message).toBe('input "mask": the image is empty (0 bytes)');
    expect((await inputError(decodeImage('image', Buffer.from('hello, not an image')))).message).toMatch(/^input "image": not a readable image/);
    expect((await inputError(decodeImage('image', png.subarray(0, 60)))).message).toMatch(/^input "image": (cannot decode the png image|not a readable image)/);
    const tiff = await rgb(4, 4, () => [0, 0, 0])
      .tiff()
      .toBuffer();
    expect((await inputError(decodeImage('image', tiff))).message).toBe('input "image": unsupported image format "tiff" (expected png, jpeg, webp or gif)');
    const bomb = bombPng(60000, 60000);
    expect(bomb.length).toBeLessThan(1000);
    expect((await inputError(decodeImage('image', bomb))).message).toMatch(/60000×60000 = 3600000000 pixels, more than the \d+-pixel limit/);
  });
});

describe('reading image inputs', () => {
  let server: Server;
  let base = '';
  const png = rgb(2, 2, () => [9, 9, 9])
    .png()
    .toBuffer();
  beforeAll(async () => {
    const body = await png;
    server = createServer((req, res) => {
      if (req.url === '/ok.png') res.end(body);
      else if (req.url === '/hang') return;
      else if (req.url === '/moved') res.writeHead(302, { location: '/ok.png' }).end();
      else res.writeHead(404).end('missing');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });
  const local = { maxBytes: 1 << 20, timeoutMs: 500, allowPrivateNetworks: true };

  it('reads data URIs, files and URLs (following redirects)', async () => {
    const body = await png;
    expect(Buffer.from(await readImageSource('image', `data:image/png;base64,${body.toString('base64')}`)).equals(body)).toBe(true);
    const file = join(tmp(), 'in.png');
    writeFileSync(file, body);
    expect(Buffer.from(await readImageSource('image', file, { ...DEFAULT_IMAGE_SOURCE, allowLocalFiles: true })).equals(body)).toBe(true);
    expect((await inputError(readImageSource('image', file))).message).toBe('input "image": only data URIs and http(s) URLs are accepted');
    expect(Buffer.from(await readImageSource('image', `${base}/ok.png`, local)).equals(body)).toBe(true);
    expect(Buffer.from(await readImageSource('image', `${base}/moved`, local)).equals(body)).toBe(true);
  });

  it('decodes percent-encoded data URIs byte by byte and names the input when one is malformed', async () => {
    const body = await png;
    const encoded = [...body].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
    expect(Buffer.from(await readImageSource('image', `data:image/png,${encoded}`)).equals(body)).toBe(true);
    expect(Buffer.from(await readImageSource('image', 'data:text/plain,a%C3%A9b'))).toEqual(Buffer.from('aéb'));
    for (const input of ['image', 'mask']) {
      for (const uri of ['data:image/png,%ZZ', 'data:image/png,abc%', 'data:image/png,%e']) {
        expect((await inputError(readImageSource(input, uri))).message).toBe(`input "${input}": malformed data URI: "%" must be followed by two hex digits`);
      }
    }
  });

  it('reports missing files, HTTP errors, time-outs, oversize bodies and private addresses', async () => {
    expect((await inputError(readImageSource('image', join(tmp(), 'nope.png'), { ...DEFAULT_IMAGE_SOURCE, allowLocalFiles: true }))).message).toMatch(
      /^input "image": cannot read .*nope\.png: no such file$/,
    );
    expect((await inputError(readImageSource('mask', `${base}/missing.png`, local))).message).toMatch(/^input "mask": cannot download: HTTP 404/);
    expect((await inputError(readImageSource('image', `${base}/hang`, local))).message).toMatch(/timed out after 500 ms/);
    expect((await inputError(readImageSource('image', `${base}/ok.png`, { ...local, maxBytes: 10 }))).message).toMatch(/exceeds the 10-byte limit/);
    expect((await inputError(readImageSource('image', `${base}/ok.png`, { maxBytes: 1 << 20, timeoutMs: 500 }))).message).toMatch(
      /127\.0\.0\.1 is a private, loopback or link-local address, which is not allowed/,
    );
    expect((await inputError(readImageSource('image', 'ftp://example.com/x.png', { ...DEFAULT_IMAGE_SOURCE, allowLocalFiles: true }))).message).toMatch(
      /only data URIs, http\(s\) URLs and local files/,
    );
  });
});

describe('tensors and output encoding', () => {
  it('converts images to [-1, 1] tensors and back, and resizes with Lanczos', async () => {
    const image = await decodeImage(
      'image',
      await rgb(5, 3, (x, y) => [x * 50, y * 100, 255])
        .png()
        .toBuffer(),
    );
    const t = imageToTensor(image);
    expect(t.dims).toEqual([1, 3, 3, 5]);
    expect((t.data as Float32Array)[0]).toBe(-1);
    expect((t.data as Float32Array)[2 * 15]).toBe(1);
    expect(Array.from(tensorToImage(t, 0).data)).toEqual(Array.from(image.data));
    const resized = await resizeLanczos(image, 16, 16);
    expect([resized.width, resized.height, resized.data.length]).toEqual([16, 16, 768]);
  });

  it('encodes webp (lossy), jpg and png with their names', async () => {
    const image = await decodeImage(
      'image',
      await rgb(32, 32, (x, y) => [x * 8, y * 8, (x * y) % 256])
        .png()
        .toBuffer(),
    );
    const formats = { webp: 'webp', jpg: 'jpeg', png: 'png' } as const;
    for (const [format, sharpName] of Object.entries(formats) as [keyof typeof formats, string][]) {
      const bytes = await encodeImage(image, format, 80);
      expect((await sharp(bytes).metadata()).format).toBe(sharpName);
    }
    expect((await encodeImage(image, 'webp', 10)).length).toBeLessThan((await encodeImage(image, 'webp', 100)).length);
    expect((await encodeImage(image, 'png', 0)).equals(await encodeImage(image, 'png', 100))).toBe(true);
    await expect(encodeImage(image, 'jpg', 101)).rejects.toThrow(/output_quality/);
    expect(outputName(2, 'jpg')).toBe('out-2.jpg');
  });

  it("encodes every format at the quality edges 0, 1, 99 and 100 (0 maps to sharp's floor 1, as PIL accepts 0)", async () => {
    const image = await decodeImage(
      'image',
      await rgb(16, 16, (x, y) => [x * 16, y * 16, 128])
        .png()
        .toBuffer(),
    );
    const formats = { webp: 'webp', jpg: 'jpeg', png: 'png' } as const;
    for (const [format, sharpName] of Object.entries(formats) as [keyof typeof formats, string][]) {
      for (const quality of [0, 1, 99, 100]) {
        const bytes = await encodeImage(image, format, quality);
        expect((await sharp(bytes).metadata()).format, `${format} at ${quality}`).toBe(sharpName);
      }
      expect((await encodeImage(image, format, 0)).equals(await encodeImage(image, format, 1))).toBe(true);
    }
  });
});
