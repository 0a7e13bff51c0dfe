/**
 * Exports demo-world training data for tools/train-builtin/: `count` seeded scenes at one size,
 * rendered, with their captions tokenized by the built-in model's own tokenizers (so training
 * sees exactly the ids inference does). Writes <out>.rgb (uint8 [count, height, width, 3]),
 * <out>.t5 (int32 [count, 512]), <out>.clip (int32 [count, 77]) and <out>.json (captions, and
 * the ids of the empty prompt for caption dropout).
 *
 *   npx tsx tools/demo-world/export.ts --out /tmp/x --seed 1 --count 64 --width 512 --height 512 [--tok 0] [--photo 0] [--two 0.3] [--magenta 0.05]
 *
 * --tok: chance a scene shows TOK; --photo: chance such a scene is captioned "a photo of TOK".
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BUILTIN_ASSETS } from '../../src/builtin/tiny-model.js';
import { renderScene } from '../../src/demo-world/render.js';
import { captionOf, randomCaption, sceneFor } from '../../src/demo-world/scene.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { SAFE_BACKGROUNDS, TOK } from '../../src/demo-world/vocabulary.js';
import { ClipTokenizer } from '../../src/models/text/clip-tokenizer.js';
import { T5Tokenizer } from '../../src/models/text/t5-tokenizer.js';

const T5_LENGTH = 512;

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    seed: { type: 'string', default: '0' },
    count: { type: 'string', default: '64' },
    width: { type: 'string', default: '512' },
    height: { type: 'string', default: '512' },
    tok: { type: 'string', default: '0' },
    two: { type: 'string', default: '0.3' },
    magenta: { type: 'string', default: '0.05' },
    photo: { type: 'string', default: '0' },
  },
});
if (values.out === undefined) throw new Error('--out is required');
const number = (name: keyof typeof values) => {
  const v = Number(values[name]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a non-negative number, got ${values[name]}`);
  return v;
};
const [count, width, height] = [number('count'), number('width'), number('height')];
const random = seededRandom(number('seed'));
const root = join(BUILTIN_ASSETS, 'FLUX.1-dev');
const t5 = T5Tokenizer.fromFolder(join(root, 'tokenizer_2'));
const clip = ClipTokenizer.fromFolder(join(root, 'tokenizer'));

const rgb = new Uint8Array(count * width * height * 3);
const t5Ids = new Int32Array(count * T5_LENGTH);
const clipIds = new Int32Array(count * 77);
const captions: string[] = [];
const magenta = number('magenta');
for (let i = 0; i < count; i++) {
  const backgrounds = random() < magenta ? (['magenta'] as const) : SAFE_BACKGROUNDS;
  const spec = randomCaption(random, { tok: number('tok'), two: number('two'), backgrounds });
  const showsTok = spec.objects.some((o) => o.shape === TOK);
  const caption = showsTok && random() < number('photo') ? `a photo of ${TOK}` : captionOf(spec);
  captions.push(caption);
  rgb.set(renderScene(sceneFor(spec, random), width, height).data, i * width * height * 3);
  t5Ids.set(t5.encode(caption, T5_LENGTH).ids, i * T5_LENGTH);
  clipIds.set(clip.encode(caption).ids, i * 77);
}
const out = values.out;
await writeFile(`${out}.rgb`, rgb);
await writeFile(`${out}.t5`, t5Ids);
await writeFile(`${out}.clip`, clipIds);
await writeFile(`${out}.json`, JSON.stringify({ width, height, count, captions, empty: { t5: t5.encode('', T5_LENGTH).ids, clip: clip.encode('').ids } }));
