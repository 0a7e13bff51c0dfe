/**
 * An image input: a file picker, drag-and-drop and paste onto the field, or a URL; shows a
 * preview. Files become data URIs (what the page sends); their names are kept for the code
 * snippets, which read them from local files.
 */
import type { Field } from './schema.js';
import type { SnippetFile } from './snippets.js';
import { el } from './dom.js';

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif' };

export function mimeTypeOf(dataUri: string): string {
  return /^data:([^;,]+)/.exec(dataUri)?.[1] ?? 'application/octet-stream';
}

function readAsDataUri(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error('the file could not be read'));
    reader.readAsDataURL(file);
  });
}

export class ImageInput {
  readonly element: HTMLElement;
  readonly picker: HTMLInputElement;
  private readonly url: HTMLInputElement;
  private readonly preview: HTMLImageElement;
  private readonly remove: HTMLButtonElement;
  private value: string | undefined;
  private fileName: string | undefined;
  private readonly listeners: (() => void)[] = [];

  constructor(
    private readonly field: Field,
    id: string,
    describedBy: string,
  ) {
    this.picker = el('input', { type: 'file', id, accept: 'image/*', 'aria-describedby': describedBy });
    this.url = el('input', { type: 'url', placeholder: 'or paste an image, or an image URL', 'aria-label': `${field.title} URL`, inputmode: 'url' });
    this.preview = el('img', { class: 'preview', alt: `${field.title} preview`, hidden: true });
    this.remove = el('button', { type: 'button', class: 'small', hidden: true }, `Remove ${field.title.toLowerCase()}`);
    this.element = el('div', { class: 'image-input', 'data-drop': field.name }, this.picker, this.url, this.preview, this.remove);

    this.picker.addEventListener('change', () => {
      const file = this.picker.files?.[0];
      if (file !== undefined) void this.setFile(file, file.name);
    });
    this.url.addEventListener('change', () => this.set(this.url.value.trim() === '' ? undefined : this.url.value.trim()));
    this.remove.addEventListener('click', () => this.set(undefined));
    this.element.addEventListener('dragover', (event) => {
      event.preventDefault();
      this.element.classList.add('dragging');
    });
    this.element.addEventListener('dragleave', () => this.element.classList.remove('dragging'));
    this.element.addEventListener('drop', (event) => {
      event.preventDefault();
      this.element.classList.remove('dragging');
      const file = event.dataTransfer?.files[0];
      if (file !== undefined) void this.setFile(file, file.name);
    });
    this.element.addEventListener('paste', (event) => {
      const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
      if (file === undefined) return;
      event.preventDefault();
      void this.setFile(file, `${field.name}.${EXTENSIONS[file.type] ?? 'png'}`);
    });
  }

  get(): string | undefined {
    return this.value;
  }

  /** A URL or data URI (from history or the gallery), or undefined to clear. */
  set(value: unknown, fileName?: string): void {
    this.value = typeof value === 'string' && value !== '' ? value : undefined;
    const isData = this.value?.startsWith('data:') === true;
    this.fileName = isData ? (fileName ?? `${this.field.name}.${EXTENSIONS[mimeTypeOf(this.value ?? '')] ?? 'png'}`) : undefined;
    this.url.value = this.value !== undefined && !isData ? this.value : '';
    if (this.value === undefined) this.picker.value = '';
    this.preview.hidden = this.value === undefined;
    if (this.value !== undefined) this.preview.src = this.value;
    else this.preview.removeAttribute('src');
    this.remove.hidden = this.value === undefined;
    for (const listener of this.listeners) listener();
  }

  async setFile(file: Blob, name: string): Promise<void> {
    this.set(await readAsDataUri(file), name.replace(/[^\w.-]+/g, '_'));
  }

  /** The local file the snippets read this input from (when it holds a file's data). */
  file(): SnippetFile | undefined {
    if (this.value === undefined || this.fileName === undefined) return undefined;
    return { fileName: this.fileName, mimeType: mimeTypeOf(this.value) };
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  focus(): void {
    this.picker.focus();
  }
}
