/**
 * Follows a prediction from its creation to its end on the server's event stream (`urls.stream`,
 * see README "Progress"): the progress bar moves per denoising step across all outputs, the logs
 * panel shows each line (a progress line replaces the one before it, as on a terminal), the
 * clock shows the time since the start, and Cancel asks the server to stop it.
 */
import type { Api, Prediction } from './api.js';
import { byId } from './dom.js';

interface StepEvent {
  output: number;
  outputs: number;
  step: number;
  total: number;
}

const PROGRESS_LINE = /^\s*\d+%\|/;
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

export class RunView {
  private readonly progress = byId<HTMLProgressElement>('progress');
  private readonly status = byId('run-status');
  private readonly elapsed = byId('elapsed');
  private readonly logs = byId('logs');
  private readonly cancelButton = byId<HTMLButtonElement>('cancel');
  private current: Prediction | undefined;

  constructor(private readonly api: Api) {
    this.cancelButton.addEventListener('click', () => void this.cancel());
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  /** Follows a created prediction until it ends; resolves with its final state. */
  async follow(created: Prediction): Promise<Prediction> {
    this.current = created;
    this.cancelButton.hidden = false;
    this.cancelButton.disabled = false;
    this.logs.textContent = '';
    this.progress.value = 0;
    this.progress.max = 1;
    this.showStatus('Starting…');
    const started = Date.now();
    const clock = setInterval(() => (this.elapsed.textContent = `${((Date.now() - started) / 1000).toFixed(1)} s`), 100);
    try {
      await this.stream(created);
      const final = await this.api.json<Prediction>('GET', `/v1/predictions/${encodeURIComponent(created.id)}`);
      this.elapsed.textContent = `${((Date.now() - started) / 1000).toFixed(1)} s`;
      if (final.status === 'succeeded') this.progress.value = this.progress.max;
      this.showStatus(final.status === 'failed' ? `Failed: ${final.error ?? 'unknown error'}` : final.status === 'canceled' ? 'Canceled' : 'Done');
      return final;
    } finally {
      clearInterval(clock);
      this.current = undefined;
      this.cancelButton.hidden = true;
    }
  }

  /** Resolves at the stream's `done` event; if the stream breaks, polls the prediction instead. */
  private stream(prediction: Prediction): Promise<void> {
    return new Promise((resolve) => {
      const source = new EventSource(prediction.urls.stream);
      const finish = () => {
        source.close();
        resolve();
      };
      source.addEventListener('logs', (event) => this.logLine((event as MessageEvent<string>).data));
      source.addEventListener('progress', (event) => this.step(JSON.parse((event as MessageEvent<string>).data) as StepEvent));
      source.addEventListener('done', finish);
      source.addEventListener('error', (event) => {
        // The stream's own `error` event (the failure, with data) comes just before `done`.
        if (event instanceof MessageEvent) return;
        source.close();
        void this.poll(prediction.id).then(resolve);
      });
    });
  }

  private async poll(id: string): Promise<void> {
    for (;;) {
      const state = await this.api.json<Prediction>('GET', `/v1/predictions/${encodeURIComponent(id)}`);
      if (TERMINAL.has(state.status)) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  private step(event: StepEvent): void {
    this.progress.max = event.outputs * event.total;
    this.progress.value = event.output * event.total + event.step;
    const of = event.outputs > 1 ? ` (image ${event.output + 1} of ${event.outputs})` : '';
    this.showStatus(`Step ${event.step} of ${event.total}${of}`);
    this.progress.setAttribute('aria-valuetext', `step ${event.step} of ${event.total}${of}`);
  }

  private logLine(line: string): void {
    const last = this.logs.lastChild;
    if (PROGRESS_LINE.test(line) && last !== null && PROGRESS_LINE.test(last.textContent ?? '')) last.textContent = `${line}\n`;
    else this.logs.append(document.createTextNode(`${line}\n`));
    this.logs.scrollTop = this.logs.scrollHeight;
  }

  showStatus(text: string): void {
    this.status.textContent = text;
  }

  /** The logs of a finished prediction (reopened from history). */
  showLogs(logs: string): void {
    this.logs.textContent = '';
    for (const line of logs.split('\n').filter((l) => l !== '')) this.logLine(line);
  }

  async cancel(): Promise<void> {
    if (this.current === undefined) return;
    this.cancelButton.disabled = true;
    this.showStatus('Canceling…');
    await this.api.json('POST', `/v1/predictions/${encodeURIComponent(this.current.id)}/cancel`);
  }
}
