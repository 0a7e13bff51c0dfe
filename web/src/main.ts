/**
 * The playground: the form from /openapi.json, Run (the same JSON a client sends to the Replicate
 * routes), progress and logs from the event stream, the gallery, history, and the API tab.
 */
import { Api, ApiError, type Prediction } from './api.js';
import { ApiTab } from './api-tab.js';
import { announce, byId } from './dom.js';
import { InputForm } from './form.js';
import { Gallery } from './gallery.js';
import { HistoryView } from './history.js';
import { RunView } from './run.js';
import { inputFields, missingRequired, requestInput } from './schema.js';
import type { SnippetRequest } from './snippets.js';
import { askToken } from './token-dialog.js';

const DEFAULT_MODEL = 'any-owner/flux-lora';

const TABS = ['playground', 'api', 'history'] as const;

function selectTab(name: (typeof TABS)[number]): void {
  for (const tab of TABS) {
    byId(`tab-${tab}`).setAttribute('aria-selected', String(tab === name));
    byId(`panel-${tab}`).hidden = tab !== name;
  }
}

async function showHealth(): Promise<void> {
  const badge = byId('server-status');
  const health = (await (await fetch('/health-check')).json()) as { status: string; version?: { flux_lora?: string } };
  badge.textContent = `${health.status} · v${health.version?.flux_lora ?? '?'}`;
  badge.className = `badge ${health.status.toLowerCase()}`;
}

async function main(): Promise<void> {
  const api = new Api(askToken);
  const fields = inputFields((await (await fetch('/openapi.json')).json()) as Parameters<typeof inputFields>[0]);
  const form = new InputForm(byId('form-fields'), fields);
  const run = new RunView(api);
  const apiTab = new ApiTab();
  const model = document.querySelector<HTMLMetaElement>('meta[name="flux-lora-model"]')?.content || DEFAULT_MODEL;
  const imageField = fields.find((field) => field.kind === 'file');
  const runButton = byId<HTMLButtonElement>('run');
  const formError = byId('form-error');

  const gallery = new Gallery((uri, fileName) => {
    if (imageField === undefined) return;
    selectTab('playground');
    form.image(imageField.name)?.set(uri, fileName);
    form.focus(imageField.name);
    announce(`${fileName} is now the input image`);
  });

  const snippetRequest = (): SnippetRequest => {
    const values = form.values();
    const format = values.output_format ?? fields.find((field) => field.name === 'output_format')?.default ?? 'webp';
    return { baseUrl: location.origin, model, input: requestInput(fields, values), files: form.files(), format: String(format) };
  };

  const update = () => {
    const missing = missingRequired(fields, form.values());
    runButton.disabled = run.running || missing.length > 0;
    byId('missing').textContent = missing.length > 0 ? `Enter the ${missing.map((field) => field.title.toLowerCase()).join(', ')} to run.` : '';
    const request = snippetRequest();
    const data = Object.fromEntries(Object.keys(request.files).map((name) => [name, String(form.values()[name])]));
    apiTab.update(request, data);
  };
  form.onChange(update);

  const start = async (input: Record<string, unknown>) => {
    if (run.running) return;
    form.clearErrors();
    formError.hidden = true;
    runButton.disabled = true;
    run.showStatus('Sending…');
    try {
      const created = await api.json<Prediction>('POST', `/v1/models/${model}/predictions`, { input });
      byId('result').scrollIntoView({ block: 'nearest' });
      gallery.clear();
      const final = await run.follow(created);
      gallery.show(final);
      announce(`Prediction ${final.status}`);
    } catch (error) {
      // A 422 names inputs: its messages go next to them; those naming none, and other errors, under the Run button.
      const invalid = error instanceof ApiError && error.status === 422 && error.fields.length > 0 ? error.fields : undefined;
      const unplaced = invalid === undefined ? [error instanceof Error ? error.message : String(error)] : form.showErrors(invalid);
      formError.textContent = unplaced.join('; ');
      formError.hidden = unplaced.length === 0;
      run.showStatus(invalid === undefined ? 'Could not start' : 'Check the marked inputs');
    } finally {
      update();
    }
  };

  const open = (prediction: Prediction) => {
    form.set(prediction.input);
    gallery.show(prediction);
    run.showLogs(prediction.logs);
    run.showStatus(`${prediction.status} · ${prediction.id}`);
    selectTab('playground');
  };

  const history = new HistoryView(api, {
    open,
    runAgain: (prediction) => {
      open(prediction);
      void start(requestInput(fields, form.values()));
    },
  });

  byId('form').addEventListener('submit', (event) => {
    event.preventDefault();
    const values = form.values();
    if (missingRequired(fields, values).length > 0) return;
    void start(requestInput(fields, values));
  });
  // Enter in a text area runs, as in the other boxes; Shift+Enter starts a new line.
  byId('form').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && event.target instanceof HTMLTextAreaElement) {
      event.preventDefault();
      byId<HTMLFormElement>('form').requestSubmit();
    }
  });
  byId('reset').addEventListener('click', () => form.set({}));
  for (const tab of TABS) {
    byId(`tab-${tab}`).addEventListener('click', () => {
      selectTab(tab);
      if (tab === 'history') void history.load().catch((error: Error) => announce(error.message));
    });
  }
  // A pasted image with no image field focused goes to the first image input.
  document.addEventListener('paste', (event) => {
    const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
    const target = imageField === undefined ? undefined : form.image(imageField.name);
    if (file === undefined || target === undefined || (event.target instanceof Element && event.target.closest('.image-input') !== null)) return;
    event.preventDefault();
    void target.setFile(file, `${imageField?.name ?? 'image'}.${file.type.split('/')[1] ?? 'png'}`);
  });

  update();
  byId('app').dataset.ready = 'true';
  void showHealth().catch(() => undefined);
}

main().catch((error: Error) => {
  const formError = byId('form-error');
  formError.textContent = `The playground could not start: ${error.message}`;
  formError.hidden = false;
});
