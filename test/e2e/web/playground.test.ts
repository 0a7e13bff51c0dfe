/**
 * The playground in a real browser (Debian's chromium through playwright-core) against a real
 * `flux-lora serve` on the built-in model with a token: run with progress, cancel, 422 messages
 * next to their inputs, a missing required input, image + painted mask (inpainting), "use as
 * input image" (img2img), the API tab's snippets reproducing the page's bytes, keyboard-only use,
 * axe-core, and screenshots at desktop and phone widths without horizontal scroll. The tests are
 * one person's session in one tab, in order: each starts from the page the one before left.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTempDir } from '../../helpers/temp-dir.js';
import { ARTIFACTS, launchBrowser, ROOT, serve, TOKEN, type ServedPlayground } from './browser.js';

const run = promisify(execFile);
const tmp = useTempDir('playground-');
const pageErrors: string[] = [];
let server: ServedPlayground;
let browser: Browser;
let page: Page;

/** Small enough to run in a fraction of a second on the built-in model. */
const SMALL = { prompt: 'a photo of TOK', width: '256', height: '256', steps: '4', seed: '7', format: 'png' };

async function openPlayground(target: Page): Promise<void> {
  await target.goto(server.url, { waitUntil: 'load' });
  await target.waitForSelector('#app[data-ready]');
}

/** A radio button of a choice (visually replaced by its label). */
async function choose(name: string): Promise<void> {
  await page.getByRole('radio', { name, exact: true }).check({ force: true });
}

async function fillSmall(values = SMALL): Promise<void> {
  await page.fill('#in-prompt', values.prompt);
  await choose('custom');
  await page.getByLabel('Width value').fill(values.width);
  await page.getByLabel('Height value').fill(values.height);
  await page.getByLabel('Num Inference Steps value').fill(values.steps);
  await page.getByLabel('Seed', { exact: true }).fill(values.seed);
  await choose(values.format);
}

/** Answers the token dialog if the page asks (once a session). */
async function answerTokenDialog(): Promise<void> {
  const dialog = page.locator('#token-dialog[open]');
  if ((await dialog.count()) === 0) return;
  await page.fill('#token-input', TOKEN);
  await page.getByRole('button', { name: 'Use this token' }).click();
}

/** Clicks Run (answering the token dialog the first time) and waits for the prediction's end. */
async function runAndWait(): Promise<string> {
  await page.click('#run');
  await page.waitForFunction(
    () =>
      document.querySelector('#token-dialog[open]') !== null ||
      /Step|Done|Canceled|Failed|Check/.test(document.getElementById('run-status')?.textContent ?? ''),
  );
  await answerTokenDialog();
  await page.waitForFunction(() => /^(Done|Canceled|Failed|Check)/.test(document.getElementById('run-status')?.textContent ?? ''), undefined, {
    timeout: 30_000,
  });
  const status = (await page.textContent('#run-status')) ?? '';
  if (!status.startsWith('Check')) return status;
  // The messages shown, so that an unexpected 422 says what it was.
  const messages = await page.locator('.error:not([hidden])').allTextContents();
  return `${status}: ${messages.join(' | ')}`;
}

/** The status texts the page shows from now on. */
async function recordStatuses(): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const target = document.getElementById('run-status');
    const seen: string[] = [];
    (window as unknown as { statuses: string[] }).statuses = seen;
    new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach((n) => seen.push(n.textContent ?? '')))).observe(target!, {
      childList: true,
    });
  });
  return () => page.evaluate(() => (window as unknown as { statuses: string[] }).statuses);
}

const outputSrc = (index = 0) => page.locator('#gallery img').nth(index).getAttribute('src') as Promise<string>;
const bytesOf = (dataUri: string) => Buffer.from(dataUri.slice(dataUri.indexOf(',') + 1), 'base64');

beforeAll(async () => {
  [server, browser] = await Promise.all([serve(join(tmp(), 'cache')), launchBrowser()]);
  mkdirSync(ARTIFACTS, { recursive: true });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await openPlayground(page);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe('playground (chromium)', () => {
  it('renders the form from /openapi.json: every input of the schema has a labelled control', async () => {
    const schema = (await (await fetch(`${server.url}/openapi.json`)).json()) as { components: { schemas: { Input: { properties: object } } } };
    for (const name of Object.keys(schema.components.schemas.Input.properties)) {
      expect(await page.locator(`[data-input="${name}"]`).count(), name).toBe(1);
    }
    // width and height appear with the custom aspect ratio only
    expect(await page.locator('[data-input="width"]').isHidden()).toBe(true);
    await choose('custom');
    expect(await page.locator('[data-input="width"]').isVisible()).toBe(true);
    const weight = await page.evaluate(() =>
      [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')].reduce(
        (sum, e) => sum + (e as PerformanceResourceTiming).transferSize,
        0,
      ),
    );
    const firstRenderMs = await page.evaluate(() => performance.getEntriesByType('navigation')[0]?.duration ?? -1);
    writeFileSync(join(ARTIFACTS, 'page-weight.json'), JSON.stringify({ transferredBytes: weight, loadMs: firstRenderMs }, null, 2));
    expect(weight).toBeLessThan(300 * 1024);
  });

  it('runs: asks for the token once, the progress bar advances to the last step, the image has the requested size and format', async () => {
    await fillSmall();
    const statuses = await recordStatuses();
    expect(await runAndWait()).toBe('Done');
    const seen = await statuses();
    for (let step = 1; step <= 4; step++) expect(seen).toContain(`Step ${step} of 4`);
    expect(await page.evaluate(() => (document.getElementById('progress') as HTMLProgressElement).value)).toBe(4);
    const src = await outputSrc();
    expect(src).toMatch(/^data:image\/png;base64,/);
    expect(await sharp(bytesOf(src)).metadata()).toMatchObject({ width: 256, height: 256, format: 'png' });
    await page.waitForFunction(() => /256×256 · png/.test(document.querySelector('#gallery figcaption')?.textContent ?? ''));
    expect(await page.textContent('#logs')).toContain('Using seed: 7');
    expect(await page.getByRole('button', { name: 'Copy seed 7' }).count()).toBe(1);
  });

  it('cancels a run mid-way', async () => {
    await page.getByLabel('Width value').fill('1440');
    await page.getByLabel('Height value').fill('1440');
    await page.getByLabel('Num Inference Steps value').fill('50');
    await page.click('#run');
    // The token given once is kept for the tab's session.
    expect(await page.locator('#token-dialog[open]').count()).toBe(0);
    await page.waitForFunction(() => /^Step ([2-9]|\d\d) of 50/.test(document.getElementById('run-status')?.textContent ?? ''), undefined, { timeout: 30_000 });
    await page.click('#cancel');
    await page.waitForFunction(() => document.getElementById('run-status')?.textContent === 'Canceled', undefined, { timeout: 30_000 });
    expect(await page.locator('#gallery img').count()).toBe(0);
    await fillSmall();
  });

  it("shows the server's 422 message next to the input it names", async () => {
    await page.getByLabel('Width value').fill('5000');
    expect(await runAndWait()).toMatch(/^Check the marked inputs/);
    const answer = await fetch(`${server.url}/v1/predictions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ input: { prompt: 'x', aspect_ratio: 'custom', width: 5000 } }),
    });
    const { invalid_fields } = (await answer.json()) as { invalid_fields: { field: string; description: string }[] };
    const message = invalid_fields.find((f) => f.field === 'width')?.description ?? 'none';
    expect(await page.textContent('#err-width')).toBe(message);
    expect(await page.isVisible('#err-width')).toBe(true);
    expect(await page.isHidden('#err-height')).toBe(true);
    await page.getByLabel('Width value').fill('256');
    expect(await page.isHidden('#err-width')).toBe(true);
  });

  it('blocks Run with a message while a required input is empty', async () => {
    await page.fill('#in-prompt', '');
    expect(await page.isDisabled('#run')).toBe(true);
    expect(await page.textContent('#missing')).toBe('Enter the prompt to run.');
    await page.fill('#in-prompt', SMALL.prompt);
    expect(await page.isEnabled('#run')).toBe(true);
    expect(await page.textContent('#missing')).toBe('');
  });

  it('drag-and-drop onto the image input, or a paste anywhere, sets the image (named for the snippets)', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c33' } })
      .png()
      .toBuffer();
    const deliver = (event: 'drop' | 'paste') =>
      page.evaluate(
        ({ base64, event }) => {
          const file = new File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], 'dropped.png', { type: 'image/png' });
          const data = new DataTransfer();
          data.items.add(file);
          const target = event === 'drop' ? document.querySelector('[data-drop="image"]')! : document.body;
          target.dispatchEvent(
            event === 'drop'
              ? new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true })
              : new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }),
          );
        },
        { base64: png.toString('base64'), event },
      );
    const preview = page.locator('[data-input="image"] .preview');
    for (const [event, fileName] of [
      ['drop', 'dropped.png'],
      ['paste', 'image.png'],
    ] as const) {
      await deliver(event);
      await page.waitForFunction(() => document.querySelector('[data-input="image"] .preview:not([hidden])') !== null);
      expect(bytesOf((await preview.getAttribute('src'))!).equals(png)).toBe(true);
      expect(await page.locator('#api-files a').getAttribute('download')).toBe(fileName);
      await page.getByRole('button', { name: 'Remove image' }).click();
      expect(await preview.isHidden()).toBe(true);
    }
  });

  it('inpaints an uploaded image with a painted mask, and the curl snippet with those files gives the same bytes', async () => {
    const photo = await sharp({ create: { width: 256, height: 192, channels: 3, background: { r: 40, g: 120, b: 200 } } })
      .png()
      .toBuffer();
    await page.setInputFiles('#in-image', { name: 'photo.png', mimeType: 'image/png', buffer: photo });
    await page.waitForSelector('[data-input="image"] .preview:not([hidden])');
    await page.getByRole('button', { name: 'Paint the mask on the image' }).click();
    const canvas = page.locator('.painter-canvas');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5, { steps: 8 });
    await page.mouse.up();
    await page.locator('[data-input="mask"]').screenshot({ path: join(ARTIFACTS, 'desktop-mask-painter.png') });
    const mask = (await page.locator('[data-input="mask"] .preview').getAttribute('src')) ?? '';
    const { data, info } = await sharp(bytesOf(mask)).greyscale().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([256, 192]);
    expect(data.includes(255) && data.includes(0)).toBe(true);

    expect(await runAndWait()).toBe('Done');
    expect(await page.textContent('#logs')).toContain('[!] inpaint mode');
    const pageBytes = bytesOf(await outputSrc());

    await page.click('#tab-api');
    const dir = join(tmp(), 'curl-files');
    mkdirSync(dir, { recursive: true });
    for (const link of await page.locator('#api-files a').all()) {
      writeFileSync(join(dir, (await link.getAttribute('download'))!), bytesOf((await link.getAttribute('href'))!));
    }
    const curl = (await page.textContent('#snippet-curl'))!;
    expect(curl).toContain("base64 < 'photo.png'");
    expect(curl).toContain("base64 < 'mask.png'");
    const { stdout } = await run('bash', ['-c', curl], { cwd: dir, env: { ...process.env, FLUX_LORA_API_TOKEN: TOKEN }, maxBuffer: 64 * 1024 * 1024 });
    const answer = JSON.parse(stdout) as { status: string; output: string[] };
    expect(answer.status).toBe('succeeded');
    expect(bytesOf(answer.output[0]!).equals(pageBytes)).toBe(true);
    await page.click('#tab-playground');
  });

  it('"use as input image" puts an output in the image input, and img2img runs from it', async () => {
    const output = await outputSrc();
    await page.getByRole('button', { name: 'Use as input image' }).first().click();
    expect(await page.locator('[data-input="image"] .preview').getAttribute('src')).toBe(output);
    await page.getByRole('button', { name: 'Remove mask' }).click();
    expect(await runAndWait()).toBe('Done');
    expect(await page.textContent('#logs')).toContain('[!] img2img mode');
    await page.getByRole('button', { name: 'Remove image' }).click();
  });

  it('the API tab snippets (curl, JavaScript with the replicate client) reproduce the page output byte for byte', async () => {
    await fillSmall();
    expect(await runAndWait()).toBe('Done');
    const pageBytes = bytesOf(await outputSrc());
    await page.click('#tab-api');
    const dir = join(tmp(), 'snippets');
    mkdirSync(dir, { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    const env = { ...process.env, FLUX_LORA_API_TOKEN: TOKEN };

    const curl = (await page.textContent('#snippet-curl'))!;
    const { stdout } = await run('bash', ['-c', curl], { cwd: dir, env, maxBuffer: 64 * 1024 * 1024 });
    expect(bytesOf((JSON.parse(stdout) as { output: string[] }).output[0]!).equals(pageBytes)).toBe(true);

    writeFileSync(join(dir, 'snippet.mjs'), (await page.textContent('#snippet-javascript'))!);
    await run(process.execPath, ['snippet.mjs'], { cwd: dir, env });
    expect(readFileSync(join(dir, 'out-0.png')).equals(pageBytes)).toBe(true);

    const python = (await page.textContent('#snippet-python'))!;
    expect(python).toContain(`base_url="${server.url}"`);
    expect(python).toContain('"seed": 7');
    await page.click('#tab-playground');
  });

  it('history lists the predictions newest first, reopens one, and runs it again', async () => {
    await page.click('#tab-history');
    await page.waitForSelector('#history-list .history-item');
    const ids = await page.locator('#history-list .history-item').evaluateAll((items) => items.map((item) => (item as HTMLElement).dataset.id));
    expect(ids.length).toBeGreaterThanOrEqual(5);
    const oldest = page.locator('#history-list .history-item').last();
    await oldest.getByRole('button', { name: /^Open/ }).click();
    expect(await page.isVisible('#panel-playground')).toBe(true);
    expect(await page.getByLabel('Seed', { exact: true }).inputValue()).toBe('7');
    expect(await page.getByLabel('Width value').inputValue()).toBe('256');
    const first = await outputSrc();
    await page.click('#tab-history');
    await page
      .locator('#history-list .history-item')
      .last()
      .getByRole('button', { name: /^Run again/ })
      .click();
    await page.waitForFunction(() => /^(Done|Failed|Canceled)/.test(document.getElementById('run-status')?.textContent ?? ''));
    expect(await outputSrc()).toBe(first);
  });

  it('works from the keyboard: Tab reaches every control, Enter in the prompt runs', async () => {
    await openPlayground(page);
    await fillSmall();
    const expected = await page.evaluate(() => {
      const panel = document.getElementById('panel-playground')!;
      const controls = [...panel.querySelectorAll<HTMLElement>('input, select, textarea, button, a[href], [tabindex="0"]')].filter(
        (e) => e.getClientRects().length > 0 && !(e as HTMLButtonElement).disabled && e.closest('[hidden]') === null,
      );
      // A radio group is one tab stop.
      const radioGroups = new Set<string>();
      return controls
        .filter((e) => !(e instanceof HTMLInputElement && e.type === 'radio' && (radioGroups.has(e.name) || !radioGroups.add(e.name))))
        .map((e) =>
          e instanceof HTMLInputElement && e.type === 'radio' ? `radio:${e.name}` : e.id || e.getAttribute('aria-label') || e.textContent || e.tagName,
        );
    });
    await page.click('body', { position: { x: 1, y: 1 } });
    const reached = new Set<string>();
    for (let i = 0; i < 200; i++) {
      await page.keyboard.press('Tab');
      reached.add(
        await page.evaluate(() => {
          const e = document.activeElement as HTMLElement;
          return e instanceof HTMLInputElement && e.type === 'radio' ? `radio:${e.name}` : e.id || e.getAttribute('aria-label') || e.textContent || e.tagName;
        }),
      );
    }
    expect(expected.filter((name) => !reached.has(name))).toEqual([]);
    await page.focus('#in-prompt');
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /^(Done|Failed)/.test(document.getElementById('run-status')?.textContent ?? ''));
    expect(await page.textContent('#run-status')).toBe('Done');
    expect(await page.inputValue('#in-prompt')).toBe(SMALL.prompt);
  });

  it('has no serious accessibility violations (axe-core) on the playground, API and history tabs, and /docs', async () => {
    const axe = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    const audit = async (label: string) => {
      await page.evaluate(axe);
      const results = await page.evaluate(() =>
        (window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }).axe.run(),
      );
      const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${label}: ${v.id} (${v.nodes.length})`);
      return serious;
    };
    const problems = [...(await audit('playground'))];
    await page.click('#tab-api');
    problems.push(...(await audit('api')));
    await page.click('#tab-history');
    await page.waitForSelector('#history-list .history-item');
    problems.push(...(await audit('history')));
    await page.click('#tab-playground');
    const docs = await browser.newPage();
    await docs.goto(`${server.url}/docs`);
    await docs.waitForSelector('#inputs tbody tr');
    await docs.evaluate(axe);
    const docsResults = await docs.evaluate(() =>
      (window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string }[] }> } }).axe.run(),
    );
    problems.push(...docsResults.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `docs: ${v.id}`));
    await docs.close();
    expect(problems).toEqual([]);
  });

  it('writes screenshots at 1280×800 and 390×844, with no horizontal scroll at phone width', async () => {
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    for (const [width, height, name] of [
      [1280, 800, 'desktop'],
      [390, 844, 'phone'],
    ] as const) {
      await page.setViewportSize({ width, height });
      for (const tab of ['playground', 'api', 'history'] as const) {
        await page.click(`#tab-${tab}`);
        if (tab === 'history') await page.waitForSelector('#history-list .history-item');
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.screenshot({ path: join(ARTIFACTS, `${name}-${tab}.png`) });
        if (name === 'phone') expect(await overflow(), tab).toBeLessThanOrEqual(0);
      }
      await page.click('#tab-playground');
      await page.screenshot({ path: join(ARTIFACTS, `${name}-playground-full.png`), fullPage: true });
    }
    const docs = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await docs.goto(`${server.url}/docs`);
    await docs.waitForSelector('#inputs tbody tr');
    await docs.screenshot({ path: join(ARTIFACTS, 'phone-docs.png') });
    expect(await docs.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
    await docs.close();
    expect(pageErrors).toEqual([]);
  });
});
