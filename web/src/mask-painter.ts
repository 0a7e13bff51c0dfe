/**
 * Paints an inpainting mask over the chosen image: a brush marks the area to repaint, an eraser
 * takes marks away. After every stroke the mask is handed on as a PNG of the image's own size,
 * white where painted and black elsewhere (the server repaints white: docs/inputs.md).
 */
import { el } from './dom.js';

export class MaskPainter {
  readonly element: HTMLElement;
  private readonly image: HTMLImageElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly context: CanvasRenderingContext2D;
  private readonly eraser: HTMLInputElement;
  private readonly size: HTMLInputElement;
  private last: { x: number; y: number } | undefined;

  constructor(private readonly onMask: (pngDataUri: string) => void) {
    this.image = el('img', { alt: '', class: 'painter-image' });
    this.canvas = el('canvas', { class: 'painter-canvas', role: 'img', 'aria-label': 'Mask canvas: paint the area to repaint' });
    const context = this.canvas.getContext('2d');
    if (context === null) throw new Error('this browser cannot draw on a canvas');
    this.context = context;
    const brush = el('input', { type: 'radio', name: 'mask-tool', value: 'brush', id: 'mask-brush', checked: true });
    this.eraser = el('input', { type: 'radio', name: 'mask-tool', value: 'eraser', id: 'mask-eraser' });
    this.size = el('input', { type: 'range', id: 'mask-size', min: 1, max: 100, value: 25 });
    const clear = el('button', { type: 'button', class: 'small' }, 'Clear mask');
    clear.addEventListener('click', () => {
      this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
      this.emit();
    });
    const tools = el(
      'div',
      { class: 'painter-tools' },
      el(
        'fieldset',
        { class: 'segmented' },
        el('legend', { class: 'visually-hidden' }, 'Mask tool'),
        brush,
        el('label', { for: 'mask-brush' }, 'Brush'),
        this.eraser,
        el('label', { for: 'mask-eraser' }, 'Eraser'),
      ),
      el('label', { for: 'mask-size' }, 'Brush size'),
      this.size,
      clear,
    );
    this.element = el('div', { class: 'painter', hidden: true }, el('div', { class: 'painter-stage' }, this.image, this.canvas), tools);
    this.canvas.addEventListener('pointerdown', (event) => {
      this.canvas.setPointerCapture(event.pointerId);
      this.last = this.point(event);
      this.stroke(this.last);
    });
    this.canvas.addEventListener('pointermove', (event) => {
      if (this.last !== undefined) this.stroke(this.point(event));
    });
    const end = () => {
      if (this.last === undefined) return;
      this.last = undefined;
      this.emit();
    };
    this.canvas.addEventListener('pointerup', end);
    this.canvas.addEventListener('pointercancel', end);
  }

  /** Shows the painter over `source` (a URL or data URI), with an empty mask of its size. */
  async open(source: string): Promise<void> {
    this.image.src = source;
    await this.image.decode();
    this.canvas.width = this.image.naturalWidth;
    this.canvas.height = this.image.naturalHeight;
    this.element.hidden = false;
  }

  close(): void {
    this.element.hidden = true;
  }

  get isOpen(): boolean {
    return !this.element.hidden;
  }

  /** The pointer's position in image pixels. */
  private point(event: PointerEvent): { x: number; y: number } {
    const box = this.canvas.getBoundingClientRect();
    return { x: ((event.clientX - box.left) / box.width) * this.canvas.width, y: ((event.clientY - box.top) / box.height) * this.canvas.height };
  }

  private stroke(to: { x: number; y: number }): void {
    const from = this.last ?? to;
    const c = this.context;
    // Brush size is a percentage of a quarter of the image's longer side.
    c.lineWidth = Math.max(1, (Number(this.size.value) / 100) * (Math.max(this.canvas.width, this.canvas.height) / 4));
    c.lineCap = 'round';
    c.lineJoin = 'round';
    c.strokeStyle = '#ff2d6f';
    c.globalCompositeOperation = this.eraser.checked ? 'destination-out' : 'source-over';
    c.beginPath();
    c.moveTo(from.x, from.y);
    c.lineTo(to.x + 0.01, to.y);
    c.stroke();
    this.last = to;
  }

  /** The mask as the server reads it: painted pixels white on black, at the image's size. */
  private emit(): void {
    const out = el('canvas', { width: this.canvas.width, height: this.canvas.height });
    const c = out.getContext('2d');
    if (c === null) return;
    c.drawImage(this.canvas, 0, 0);
    c.globalCompositeOperation = 'source-in';
    c.fillStyle = '#fff';
    c.fillRect(0, 0, out.width, out.height);
    c.globalCompositeOperation = 'destination-over';
    c.fillStyle = '#000';
    c.fillRect(0, 0, out.width, out.height);
    this.onMask(out.toDataURL('image/png'));
  }
}
