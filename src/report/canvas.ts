import { type Canvas, createCanvas, GlobalFonts, type SKRSContext2D } from '@napi-rs/canvas';
import { existsSync } from 'node:fs';
import { MISTAKE_RED } from './predictions.js';

/** Debian's DejaVu (package fonts-dejavu-core), registered once; else the system's default sans. */
const DEJAVU = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';
const DEJAVU_BOLD = '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf';
let registered = false;

const FONT_FAMILY = 'DejaVu Sans, sans-serif';
export const RED = MISTAKE_RED;
export const INK = '#222222';

export function font(sizePx: number, bold = false): string {
  if (!registered) {
    if (existsSync(DEJAVU)) GlobalFonts.registerFromPath(DEJAVU, 'DejaVu Sans');
    if (existsSync(DEJAVU_BOLD)) GlobalFonts.registerFromPath(DEJAVU_BOLD, 'DejaVu Sans');
    registered = true;
  }
  return `${bold ? 'bold ' : ''}${sizePx}px ${FONT_FAMILY}`;
}

/** A white canvas to draw a figure on. */
export function whiteCanvas(width: number, height: number): { canvas: Canvas; ctx: SKRSContext2D } {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  return { canvas, ctx };
}

/**
 * Draws a grey image (uint8, 0 = background) at (x, y), `scale` screen pixels per image pixel, in
 * the tutorial's `plt.cm.binary` colours: background white, the garment dark.
 */
export function drawGreyImage(
  ctx: SKRSContext2D,
  pixels: Uint8Array,
  width: number,
  height: number,
  x: number,
  y: number,
  scale: number,
): void {
  const image = ctx.createImageData(width * scale, height * scale);
  for (let row = 0; row < height * scale; row++) {
    for (let col = 0; col < width * scale; col++) {
      const value = 255 - pixels[Math.floor(row / scale) * width + Math.floor(col / scale)];
      const at = (row * width * scale + col) * 4;
      image.data[at] = value;
      image.data[at + 1] = value;
      image.data[at + 2] = value;
      image.data[at + 3] = 255;
    }
  }
  ctx.putImageData(image, x, y);
}

/** Writes `text` centred in [x, x + width), shrinking the font until it fits. */
export function centredText(
  ctx: SKRSContext2D,
  text: string,
  x: number,
  width: number,
  y: number,
  sizePx: number,
): void {
  let size = sizePx;
  ctx.font = font(size);
  while (ctx.measureText(text).width > width - 2 && size > 7) ctx.font = font(--size);
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  ctx.fillText(text, x + width / 2, y);
}
