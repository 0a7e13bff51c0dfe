/**
 * The built-in demo model's picture quality, read back by the demo-world judge: over N random world
 * captions (seeded) at 512² and 1024², the share of pictures showing each asked-for attribute
 * (background, colour, shape, size, position; two-object captions with both objects' colour and
 * shape right) for dev 28 steps, schnell 4 steps and dev with go_fast; TOK shown with the demo
 * LoRA at scale 1 and 0; `flux-lora predict` wall time from a cold process (run `npm run build` first).
 * Usage: npx tsx bench/builtin-quality.ts [--count 100] [--sizes 512,1024] [--tok-count 20]
 */
import '../src/engine-telemetry-off.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { judge, type Verdict } from '../src/demo-world/judge.js';
import { renderScene, type RgbPixels } from '../src/demo-world/render.js';
import { captionOf, randomCaption, sceneFor, type CaptionSpec } from '../src/demo-world/scene.js';
import { seededRandom } from '../src/util/seeded-random.js';
import { Predictor } from '../src/predictor/predictor.js';
import { predictPictures } from '../test/helpers/world-pictures.js';
import { builtinColdStart } from './builtin-cold-start.js';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '100' }, sizes: { type: 'string', default: '512,1024' }, 'tok-count': { type: 'string', default: '20' } },
});
const count = Number(values.count);
const tokCount = Number(values['tok-count']);
const sizes = (values.sizes ?? '').split(',').map(Number);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(tokCount) || tokCount < 1 || sizes.some((s) => !Number.isInteger(s) || s < 256)) {
  throw new Error('--count and --tok-count must be positive integers, --sizes a list of sides ≥ 256');
}

const scratch = mkdtempSync(join(tmpdir(), 'flux-lora-quality-'));
const predictor = await Predictor.create({ cacheDir: join(scratch, 'cache') });
const random = seededRandom(2024);
const captions: CaptionSpec[] = Array.from({ length: count }, () => randomCaption(random, { omit: 0 }));

interface Tally {
  [attribute: string]: [right: number, asked: number];
}

function add(tally: Tally, attribute: string, right: boolean | undefined): void {
  if (right === undefined) return;
  const entry = (tally[attribute] ??= [0, 0]);
  entry[0] += right ? 1 : 0;
  entry[1] += 1;
}

function score(tally: Tally, spec: CaptionSpec, verdict: Verdict): void {
  add(tally, 'background', verdict.background);
  for (const o of verdict.objects) {
    add(tally, 'colour', o.colour);
    add(tally, 'shape', o.shape);
    add(tally, 'size', o.size);
    add(tally, 'position', o.position);
  }
  if (spec.objects.length === 2)
    add(
      tally,
      'two objects both right',
      verdict.objects.every((o) => o.colour && o.shape),
    );
  add(tally, 'clean (no stray objects)', verdict.clean);
  add(tally, 'whole caption', verdict.correct);
}

const percent = ([right, asked]: [number, number]) => `${((100 * right) / asked).toFixed(1)}% (${right}/${asked})`;

/**
 * The scene as the built-in autoencoder returns it: its constructed 16× encoder is the mean colour of
 * each 16×16 cell and its decoder copies it back (tools/train-builtin/README.md), so this is the best
 * picture the transformer could lead to: the judge's ceiling.
 */
function throughAutoencoder(p: RgbPixels, cell = 16): RgbPixels {
  const data = new Uint8Array(p.data.length);
  for (let y0 = 0; y0 < p.height; y0 += cell)
    for (let x0 = 0; x0 < p.width; x0 += cell)
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let y = y0; y < y0 + cell; y++) for (let x = x0; x < x0 + cell; x++) sum += p.data[(y * p.width + x) * 3 + c] as number;
        for (let y = y0; y < y0 + cell; y++) for (let x = x0; x < x0 + cell; x++) data[(y * p.width + x) * 3 + c] = Math.round(sum / cell ** 2);
      }
  return { ...p, data };
}

const sceneRandom = seededRandom(99);
for (const size of sizes) {
  const tally: Tally = {};
  for (const spec of captions) score(tally, spec, judge(throughAutoencoder(renderScene(sceneFor(spec, sceneRandom), size, size)), spec));
  console.log(`${size}², the world's own scenes through the autoencoder (the judge's ceiling):`);
  for (const [attribute, entry] of Object.entries(tally)) console.log(`  ${attribute}: ${percent(entry)}`);
}

const variants: [string, Record<string, unknown>][] = [
  ['dev 28 steps', {}],
  ['schnell 4 steps', { model: 'schnell' }],
  ['dev 28 steps, go_fast', { go_fast: true }],
];
for (const size of sizes) {
  for (const [label, input] of variants) {
    const tally: Tally = {};
    const started = performance.now();
    for (const [i, spec] of captions.entries()) {
      const caption = captionOf(spec);
      const [picture] = await predictPictures(predictor, { prompt: caption, seed: i, aspect_ratio: 'custom', width: size, height: size, ...input }, scratch);
      if (picture !== undefined) score(tally, spec, judge(picture, spec));
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(`${size}², ${label} (${count} captions, ${(seconds / count).toFixed(2)} s each):`);
    for (const [attribute, entry] of Object.entries(tally)) console.log(`  ${attribute}: ${percent(entry)}`);
  }
}

const tokRandom = seededRandom(7);
const tokCaptions = Array.from({ length: tokCount }, (_, i) => (i % 2 === 0 ? 'a photo of TOK' : captionOf(randomCaption(tokRandom, { tok: 1, two: 0 }))));
for (const scale of [1, 0]) {
  let [shown, coloured] = [0, 0];
  for (const [i, prompt] of tokCaptions.entries()) {
    const [picture] = await predictPictures(
      predictor,
      { prompt, seed: i, aspect_ratio: 'custom', width: 512, height: 512, replicate_weights: 'builtin:tok', lora_scale: scale },
      scratch,
    );
    const verdict = picture === undefined ? undefined : judge(picture, prompt);
    if (verdict?.tok === true) shown++;
    if (verdict?.tokColour === true) coloured++;
  }
  console.log(
    `TOK shown with the demo LoRA at scale ${scale} (512², dev 28 steps): ${percent([shown, tokCount])}; TOK's colour, any shape: ${percent([coloured, tokCount])}`,
  );
}
await predictor.close();

const out = mkdtempSync(join(scratch, 'cold-'));
const coldCache = join(scratch, 'cold-cache');
const first = builtinColdStart(coldCache, out);
const cached = builtinColdStart(coldCache, out);
console.log(`flux-lora predict (built-in, 1024², 28 steps) from a cold process: first use ${first.toFixed(2)} s, cached ${cached.toFixed(2)} s`);
rmSync(scratch, { recursive: true, force: true });
