/**
 * The outputs of a prediction: each image with its size, format and bytes, a download link,
 * its seed (output i is the image seed + i gives alone: docs/decisions.md) to copy, and "use as
 * input image" for img2img from it in one click.
 */
import type { Prediction } from './api.js';
import { announce, byId, dataUriBytes, el, formatBytes } from './dom.js';

const SEED_LINE = /^Using seed: (\d+)$/m;

export class Gallery {
  private readonly root = byId('gallery');

  constructor(private readonly useAsInput: (uri: string, fileName: string) => void) {}

  clear(): void {
    this.root.replaceChildren();
  }

  show(prediction: Prediction): void {
    this.clear();
    const seedText = SEED_LINE.exec(prediction.logs)?.[1];
    (prediction.output ?? []).forEach((uri, index) => {
      const format = /^data:image\/(\w+)/.exec(uri)?.[1]?.replace('jpeg', 'jpg') ?? uri.split('.').pop() ?? 'image';
      const fileName = `out-${index}.${format}`;
      const seed = seedText === undefined ? undefined : Number(seedText) + index;
      const image = el('img', { src: uri, alt: `Output ${index + 1}${seed === undefined ? '' : `, seed ${seed}`}`, 'data-output': index });
      const caption = el('figcaption', {});
      const describe = () => {
        const bytes = uri.startsWith('data:') ? ` · ${formatBytes(dataUriBytes(uri))}` : '';
        caption.replaceChildren(el('span', { class: 'output-meta' }, `${image.naturalWidth}×${image.naturalHeight} · ${format}${bytes}`));
      };
      image.addEventListener('load', describe);
      const download = el('a', { href: uri, download: fileName, class: 'button small' }, 'Download');
      const use = el('button', { type: 'button', class: 'small' }, 'Use as input image');
      use.addEventListener('click', () => this.useAsInput(uri, fileName));
      const actions = el('div', { class: 'output-actions' }, download, use);
      if (seed !== undefined) {
        const copy = el('button', { type: 'button', class: 'small', 'aria-label': `Copy seed ${seed}` }, `Seed ${seed}`);
        copy.addEventListener('click', () => void copySeed(seed));
        actions.append(copy);
      }
      this.root.append(el('figure', { class: 'output' }, image, caption, actions));
    });
  }
}

async function copySeed(seed: number): Promise<void> {
  try {
    await navigator.clipboard.writeText(String(seed));
    announce(`Seed ${seed} copied`);
  } catch {
    announce(`Seed ${seed} (the clipboard is not available here)`);
  }
}
