/**
 * The input form, generated from the schema's fields: each field with its label, control,
 * description and error line; inputs that apply only for another input's value (width and height
 * for a custom aspect ratio) appear with it; the LoRA inputs are grouped; the mask field gets a
 * painter over the chosen image.
 */
import type { InvalidField } from './api.js';
import { controlFor, usesRadios, type Control } from './controls.js';
import { el } from './dom.js';
import { ImageInput } from './image-input.js';
import { MaskPainter } from './mask-painter.js';
import { isShown, type Field } from './schema.js';
import type { SnippetFile } from './snippets.js';

interface Entry {
  field: Field;
  control: Control;
  wrapper: HTMLElement;
  error: HTMLElement;
}

export class InputForm {
  private readonly entries = new Map<string, Entry>();
  private readonly images = new Map<string, ImageInput>();
  private readonly listeners: (() => void)[] = [];

  constructor(
    root: HTMLElement,
    readonly fields: Field[],
  ) {
    let group: HTMLElement | undefined;
    for (const field of fields) {
      const wrapper = this.render(field);
      if (!field.lora) {
        group = undefined;
        root.append(wrapper);
        continue;
      }
      if (group === undefined) {
        group = el('fieldset', { class: 'group' }, el('legend', {}, 'LoRAs'));
        root.append(group);
      }
      group.append(wrapper);
    }
    this.set({});
  }

  private render(field: Field): HTMLElement {
    const id = `in-${field.name}`;
    const hint = el('p', { class: 'hint', id: `hint-${field.name}` }, field.description);
    const error = el('p', { class: 'error', id: `err-${field.name}`, hidden: true });
    const describedBy = `hint-${field.name} err-${field.name}`;
    const control = field.kind === 'file' ? this.imageControl(field, id, describedBy) : controlFor(field, id, describedBy);
    control.onChange(() => {
      this.clearError(field.name);
      this.changed();
    });
    const title = [field.title, ...(field.required ? [el('span', { class: 'required', 'aria-hidden': 'true' }, ' *')] : [])];
    const grouped = usesRadios(field) || field.kind === 'list';
    const wrapper = grouped
      ? el('fieldset', { class: 'field', 'data-input': field.name }, el('legend', {}, ...title), control.element, hint, error)
      : el('div', { class: 'field', 'data-input': field.name }, el('label', { for: id }, ...title), control.element, hint, error);
    if (field.kind === 'switch') wrapper.classList.add('field-switch');
    this.entries.set(field.name, { field, control, wrapper, error });
    return wrapper;
  }

  private imageControl(field: Field, id: string, describedBy: string): Control {
    const input = new ImageInput(field, id, describedBy);
    this.images.set(field.name, input);
    const control: Control = {
      element: input.element,
      get: () => input.get(),
      set: (value) => input.set(value),
      focus: () => input.focus(),
      onChange: (listener) => input.onChange(listener),
    };
    const source = [...this.images.entries()].find(([name]) => name !== field.name)?.[1];
    if (field.name === 'mask' && source !== undefined) this.attachPainter(input, source);
    return control;
  }

  /** A "paint the mask" button and painter under the mask input, over the image input's picture. */
  private attachPainter(mask: ImageInput, image: ImageInput): void {
    const painter = new MaskPainter((png) => mask.set(png, 'mask.png'));
    const toggle = el('button', { type: 'button', class: 'small', disabled: true, 'aria-expanded': 'false' }, 'Paint the mask on the image');
    toggle.addEventListener('click', () => {
      const source = image.get();
      if (painter.isOpen || source === undefined) painter.close();
      else void painter.open(source);
      toggle.setAttribute('aria-expanded', String(!painter.isOpen));
    });
    image.onChange(() => {
      toggle.disabled = image.get() === undefined;
      painter.close();
      toggle.setAttribute('aria-expanded', 'false');
    });
    mask.element.append(toggle, painter.element);
  }

  /** The current values of every field (hidden ones included; requestInput leaves them out). */
  values(): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [name, entry] of this.entries) values[name] = entry.control.get();
    return values;
  }

  /** Fills the form with an input (absent inputs get their defaults). */
  set(input: Record<string, unknown>): void {
    for (const [name, entry] of this.entries) entry.control.set(input[name] ?? entry.field.default);
    this.clearErrors();
    this.changed();
  }

  /** The inputs the code snippets read from local files. */
  files(): Record<string, SnippetFile> {
    const files: Record<string, SnippetFile> = {};
    for (const [name, input] of this.images) {
      const file = input.file();
      if (file !== undefined) files[name] = file;
    }
    return files;
  }

  image(name: string): ImageInput | undefined {
    return this.images.get(name);
  }

  /** Shows each message next to the input it names; returns those naming no input here. */
  showErrors(invalid: InvalidField[]): string[] {
    const unplaced: string[] = [];
    let first: Entry | undefined;
    for (const { field, description } of invalid) {
      const entry = this.entries.get(field.split('.')[0] ?? '');
      if (entry === undefined || entry.wrapper.hidden) {
        unplaced.push(`${field}: ${description}`);
        continue;
      }
      entry.error.hidden = false;
      const path = field.includes('.') ? `${field}: ` : '';
      entry.error.textContent = [entry.error.textContent, `${path}${description}`].filter((t) => t !== '').join('; ');
      entry.wrapper.classList.add('invalid');
      first ??= entry;
    }
    first?.wrapper.scrollIntoView({ block: 'center' });
    first?.control.focus();
    return unplaced;
  }

  private clearError(name: string): void {
    const entry = this.entries.get(name);
    if (entry === undefined) return;
    entry.error.hidden = true;
    entry.error.textContent = '';
    entry.wrapper.classList.remove('invalid');
  }

  clearErrors(): void {
    for (const name of this.entries.keys()) this.clearError(name);
  }

  focus(name: string): void {
    this.entries.get(name)?.control.focus();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private changed(): void {
    const values = this.values();
    for (const entry of this.entries.values()) entry.wrapper.hidden = !isShown(entry.field, values, this.fields);
    for (const listener of this.listeners) listener();
  }
}
