/** The predictions this server remembers (its prediction list), newest first: reopen one, or run it again. */
import type { Api, Prediction, PredictionPage } from './api.js';
import { byId, el } from './dom.js';

export class HistoryView {
  private readonly list = byId('history-list');
  private readonly more = byId<HTMLButtonElement>('history-more');
  private next: string | null = null;

  constructor(
    private readonly api: Api,
    private readonly actions: { open(prediction: Prediction): void; runAgain(prediction: Prediction): void },
  ) {
    this.more.addEventListener('click', () => void this.load(this.next));
  }

  /** Loads the newest page (`from` null) or the page at a `next` link. */
  async load(from: string | null = null): Promise<void> {
    const path = from === null ? '/v1/predictions' : new URL(from).pathname + new URL(from).search;
    const page = await this.api.json<PredictionPage>('GET', path);
    if (from === null) this.list.replaceChildren();
    for (const prediction of page.results) this.list.append(this.item(prediction));
    if (this.list.childElementCount === 0) this.list.append(el('li', { class: 'empty' }, 'No predictions yet.'));
    this.next = page.next;
    this.more.hidden = page.next === null;
  }

  private item(prediction: Prediction): HTMLElement {
    const prompt = typeof prediction.input.prompt === 'string' ? prediction.input.prompt : '(no prompt)';
    const when = prediction.created_at === null ? '' : new Date(prediction.created_at).toLocaleString();
    const first = prediction.output?.[0];
    const thumb = first === undefined ? el('div', { class: 'thumb empty', 'aria-hidden': 'true' }) : el('img', { class: 'thumb', src: first, alt: '' });
    const which = () => el('span', { class: 'visually-hidden' }, ` prediction ${prediction.id}`);
    const open = el('button', { type: 'button', class: 'small' }, 'Open', which());
    open.addEventListener('click', () => this.actions.open(prediction));
    const again = el('button', { type: 'button', class: 'small' }, 'Run again', which());
    again.addEventListener('click', () => this.actions.runAgain(prediction));
    return el(
      'li',
      { class: 'history-item', 'data-id': prediction.id },
      thumb,
      el(
        'div',
        { class: 'history-text' },
        el('p', { class: 'history-prompt' }, prompt),
        el('p', { class: 'hint' }, el('span', { class: `badge ${prediction.status}` }, prediction.status), ` ${when}`),
      ),
      el('div', { class: 'history-actions' }, open, again),
    );
  }
}
