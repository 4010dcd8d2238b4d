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
 * Draws an image (uint8, `height x width x channels`, NHWC) at (x, y), `scale` screen pixels per
 * image pixel: a whole number of them, each a block of the pixel's colour, or fewer than one, the
 * image shrunk smoothly. Grey images are drawn `greyAsInk` in the tutorial's `plt.cm.binary` colours
 * (background white, the garment dark), or else as they are.
 */
export function drawImage(
  ctx: SKRSContext2D,
  pixels: Uint8Array,
  image: { readonly width: number; readonly height: number; readonly channels: number; readonly greyAsInk: boolean },
  x: number,
  y: number,
  scale: number,
): void {
  const { width, height, channels } = image;
  const block = Math.max(1, Math.floor(scale));
  const data = ctx.createImageData(width * block, height * block);
  const ink = channels === 1 && image.greyAsInk;
  for (let row = 0; row < height * block; row++) {
    for (let col = 0; col < width * block; col++) {
      const from = (Math.floor(row / block) * width + Math.floor(col / block)) * channels;
      const at = (row * width * block + col) * 4;
      for (let c = 0; c < 3; c++) {
        const value = pixels[from + (channels === 1 ? 0 : c)];
        data.data[at + c] = ink ? 255 - value : value;
      }
      data.data[at + 3] = 255;
    }
  }
  if (scale >= 1) {
    ctx.putImageData(data, x, y);
    return;
  }
  const full = createCanvas(width, height);
  full.getContext('2d').putImageData(data, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(full, x, y, Math.round(width * scale), Math.round(height * scale));
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
