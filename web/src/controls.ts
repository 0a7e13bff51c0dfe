/**
 * The control each kind of field gets: textarea for prompts, text and number boxes, a slider
 * with a number box for ranges, a switch for booleans, radio buttons or a select for choices,
 * and an editor for lists of objects (the `loras` list). Image inputs are in image-input.ts.
 */
import { el } from './dom.js';
import type { Field } from './schema.js';

export interface Control {
  /** The control(s), without the field's label. */
  element: HTMLElement;
  get(): unknown;
  set(value: unknown): void;
  focus(): void;
  onChange(listener: () => void): void;
}

/** Choices shown as radio buttons (few, or aspect ratios drawn as shapes); others get a select. */
export function usesRadios(field: Field): boolean {
  return field.kind === 'choice' && (field.options.length <= 4 || field.options.every((o) => /^\d+:\d+$|^custom$/.test(o)));
}

function listenable(element: HTMLElement, events: string[]): (listener: () => void) => void {
  return (listener) => events.forEach((event) => element.addEventListener(event, listener));
}

/** A value the box cannot read is sent as typed (and a fraction for an integer as it is), so the server's message names it. */
function numberValue(text: string): number | string | undefined {
  if (text.trim() === '') return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : text;
}

function textControl(field: Field, id: string, describedBy: string): Control {
  const input =
    field.kind === 'prompt'
      ? el('textarea', { id, rows: 3, 'aria-describedby': describedBy, 'aria-required': field.required, placeholder: field.required ? 'Required' : undefined })
      : el('input', { type: 'text', id, 'aria-describedby': describedBy, autocomplete: 'off', spellcheck: false });
  return {
    element: input,
    get: () => (input.value === '' ? undefined : input.value),
    set: (value) => (input.value = value === undefined || value === null ? '' : String(value)),
    focus: () => input.focus(),
    onChange: listenable(input, ['input']),
  };
}

function numberBox(field: Field, attributes: Record<string, string | number | undefined>) {
  return el('input', { type: 'number', inputmode: field.integer ? 'numeric' : 'decimal', step: field.integer ? 1 : 'any', ...attributes });
}

function numberControl(field: Field, id: string, describedBy: string): Control {
  const box = numberBox(field, { id, 'aria-describedby': describedBy, placeholder: field.name === 'seed' ? 'random' : undefined });
  return {
    element: box,
    get: () => numberValue(box.value),
    set: (value) => (box.value = typeof value === 'number' ? String(value) : ''),
    focus: () => box.focus(),
    onChange: listenable(box, ['input']),
  };
}

function rangeControl(field: Field, id: string, describedBy: string): Control {
  const step = field.integer ? 1 : ((field.maximum ?? 1) - (field.minimum ?? 0)) / 100;
  const slider = el('input', { type: 'range', id, min: field.minimum, max: field.maximum, step, 'aria-describedby': describedBy });
  const box = numberBox(field, { min: field.minimum, max: field.maximum, 'aria-label': `${field.title} value`, class: 'range-value' });
  slider.addEventListener('input', () => (box.value = slider.value));
  box.addEventListener('input', () => (slider.value = box.value));
  const element = el('div', { class: 'range' }, slider, box);
  return {
    element,
    get: () => numberValue(box.value),
    set: (value) => {
      box.value = typeof value === 'number' ? String(value) : '';
      slider.value = typeof value === 'number' ? String(value) : String(field.minimum ?? 0);
    },
    focus: () => slider.focus(),
    onChange: listenable(element, ['input']),
  };
}

function switchControl(field: Field, id: string, describedBy: string): Control {
  const box = el('input', { type: 'checkbox', role: 'switch', id, 'aria-describedby': describedBy });
  return {
    element: el('span', { class: 'switch' }, box),
    get: () => box.checked,
    set: (value) => (box.checked = value === true),
    focus: () => box.focus(),
    onChange: listenable(box, ['change']),
  };
}

/** A small rectangle of the ratio's shape for the aspect-ratio picker. */
function ratioShape(option: string): HTMLElement {
  const [w, h] = option.split(':').map(Number);
  const shape = el('span', { class: 'ratio-shape', 'aria-hidden': 'true' });
  if (w !== undefined && h !== undefined && w > 0 && h > 0) {
    const scale = 18 / Math.max(w, h);
    shape.style.width = `${Math.round(w * scale)}px`;
    shape.style.height = `${Math.round(h * scale)}px`;
  } else shape.classList.add('custom');
  return shape;
}

function radioControl(field: Field, id: string, describedBy: string): Control {
  const ratios = field.options.length > 4;
  const radios = field.options.map((option, index) =>
    el('input', { type: 'radio', name: field.name, value: option, id: index === 0 ? id : `${id}-${index}`, 'aria-describedby': describedBy }),
  );
  const element = el(
    'div',
    { class: ratios ? 'ratios' : 'segmented' },
    ...radios.flatMap((radio) => [radio, el('label', { for: radio.id }, ...(ratios ? [ratioShape(radio.value)] : []), radio.value)]),
  );
  return {
    element,
    get: () => radios.find((radio) => radio.checked)?.value,
    set: (value) => radios.forEach((radio) => (radio.checked = radio.value === String(value ?? field.default))),
    focus: () => (radios.find((radio) => radio.checked) ?? radios[0])?.focus(),
    onChange: listenable(element, ['change']),
  };
}

function selectControl(field: Field, id: string, describedBy: string): Control {
  const select = el('select', { id, 'aria-describedby': describedBy }, ...field.options.map((option) => el('option', { value: option }, option)));
  return {
    element: select,
    get: () => select.value,
    set: (value) => (select.value = String(value ?? field.default ?? field.options[0])),
    focus: () => select.focus(),
    onChange: listenable(select, ['change']),
  };
}

/** Rows of the item fields (e.g. weights and scale), with add and remove buttons. */
function listControl(field: Field, id: string, describedBy: string): Control {
  const rows = el('ol', { class: 'list-rows' });
  const add = el('button', { type: 'button', class: 'small', id, 'aria-describedby': describedBy }, `Add to ${field.title.toLowerCase()}`);
  const element = el('div', { class: 'list' }, rows, add);
  const listeners: (() => void)[] = [];
  const changed = () => listeners.forEach((listener) => listener());
  let items: { row: HTMLElement; controls: Map<string, Control> }[] = [];
  let counter = 0;

  const addRow = (value: Record<string, unknown> = {}) => {
    const rowId = `${id}-${counter++}`;
    const controls = new Map<string, Control>();
    const row = el('li', { class: 'list-row' });
    for (const itemField of field.items) {
      const controlId = `${rowId}-${itemField.name}`;
      const control = controlFor(itemField, controlId, '');
      control.set(value[itemField.name] ?? itemField.default);
      control.onChange(changed);
      controls.set(itemField.name, control);
      const label = el('label', { for: controlId }, el('span', { class: 'visually-hidden row-number' }), itemField.title);
      row.append(el('div', { class: 'list-cell' }, label, control.element));
    }
    const remove = el('button', { type: 'button', class: 'small' }, 'Remove');
    const item = { row, controls };
    remove.addEventListener('click', () => {
      items = items.filter((other) => other !== item);
      row.remove();
      update();
      changed();
      add.focus();
    });
    row.append(remove);
    rows.append(row);
    items.push(item);
    update();
  };
  const update = () => {
    add.disabled = field.maxItems !== undefined && items.length >= field.maxItems;
    // Labels say which row they belong to: "Loras 2 Scale".
    items.forEach((item, index) => {
      item.row.querySelectorAll('.row-number').forEach((span) => (span.textContent = `${field.title} ${index + 1} `));
      item.row.querySelector('button:last-child')?.setAttribute('aria-label', `Remove ${field.title.toLowerCase()} ${index + 1}`);
    });
  };
  add.addEventListener('click', () => {
    addRow();
    changed();
    items.at(-1)?.controls.values().next().value?.focus();
  });

  return {
    element,
    get: () =>
      items.map((item) => {
        const value: Record<string, unknown> = {};
        for (const [name, control] of item.controls) {
          const v = control.get();
          if (v !== undefined) value[name] = v;
        }
        return value;
      }),
    set: (value) => {
      rows.replaceChildren();
      items = [];
      if (Array.isArray(value)) for (const item of value) addRow(typeof item === 'object' && item !== null ? (item as Record<string, unknown>) : {});
      update();
    },
    focus: () => add.focus(),
    onChange: (listener) => listeners.push(listener),
  };
}

/** The control for a field that is not an image input. */
export function controlFor(field: Field, id: string, describedBy: string): Control {
  switch (field.kind) {
    case 'prompt':
    case 'text':
    case 'file':
      return textControl(field, id, describedBy);
    case 'number':
      return numberControl(field, id, describedBy);
    case 'range':
      return rangeControl(field, id, describedBy);
    case 'switch':
      return switchControl(field, id, describedBy);
    case 'choice':
      return usesRadios(field) ? radioControl(field, id, describedBy) : selectControl(field, id, describedBy);
    case 'list':
      return listControl(field, id, describedBy);
  }
}
