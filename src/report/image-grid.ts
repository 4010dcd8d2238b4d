import { centredText, drawImage, INK, RED, whiteCanvas } from './canvas.js';
import type { GridItem } from './predictions.js';

export type { GridItem } from './predictions.js';

/** Where things are in a grid, so that tests can look at what was drawn. */
export interface GridLayout {
  readonly columns: number;
  readonly rows: number;
  readonly cellWidth: number;
  readonly cellHeight: number;
  /** Screen pixels per image pixel. */
  readonly scale: number;
  /** The image's size on screen. */
  readonly imageWidth: number;
  readonly imageHeight: number;
  /** The caption area of a cell, relative to the cell's top-left corner. */
  readonly captionTop: number;
  readonly captionHeight: number;
  readonly width: number;
  readonly height: number;
}

/** The longest side of an image on screen, about: Fashion-MNIST's 28 pixels are drawn 3 times as large. */
const SHOWN_SIDE = 96;
const CAPTION_LINE = 15;

/** How a grid's images are drawn: their size and channels, and how grey levels look. */
export interface GridImages {
  readonly width: number;
  readonly height: number;
  /** @default 1 */
  readonly channels?: number;
  /**
   * Grey images as ink on paper, dark on white (the tutorial's `plt.cm.binary`), as Fashion-MNIST's
   * light garments on black are shown; false shows them as they are, black as black.
   * @default true
   */
  readonly greyAsInk?: boolean;
}

/**
 * The grid's geometry. Small images are drawn a whole number of times as large (28 pixels: 3 times),
 * large ones shrunk to about SHOWN_SIDE pixels.
 */
export function gridLayout(count: number, columns: number, image: GridImages, captionLines: number): GridLayout {
  const longest = Math.max(image.width, image.height);
  const scale = longest <= SHOWN_SIDE ? Math.floor(SHOWN_SIDE / longest) : SHOWN_SIDE / longest;
  const imageWidth = Math.round(image.width * scale);
  const imageHeight = Math.round(image.height * scale);
  const cellWidth = Math.max(imageWidth, 84) + 36;
  const captionTop = imageHeight + 8;
  const captionHeight = captionLines * CAPTION_LINE + 4;
  const cellHeight = captionTop + captionHeight + 6;
  const rows = Math.ceil(count / columns);
  return {
    columns,
    rows,
    cellWidth,
    cellHeight,
    scale,
    imageWidth,
    imageHeight,
    captionTop,
    captionHeight,
    width: columns * cellWidth,
    height: rows * cellHeight,
  };
}

/** A grid of captioned images, as the tutorial's `plt.subplot` figures, as PNG bytes. */
export function drawImageGrid(
  items: readonly GridItem[],
  options: GridImages & { readonly columns: number },
): { png: Buffer; layout: GridLayout } {
  const lines = Math.max(1, ...items.map((item) => item.caption.length));
  const layout = gridLayout(items.length, options.columns, options, lines);
  const { canvas, ctx } = whiteCanvas(layout.width, layout.height);
  const image = {
    width: options.width,
    height: options.height,
    channels: options.channels ?? 1,
    greyAsInk: options.greyAsInk ?? true,
  };
  items.forEach((item, i) => {
    const x = (i % layout.columns) * layout.cellWidth;
    const y = Math.floor(i / layout.columns) * layout.cellHeight;
    const imageX = x + (layout.cellWidth - layout.imageWidth) / 2;
    drawImage(ctx, item.pixels, image, imageX, y + 4, layout.scale);
    ctx.strokeStyle = '#bbbbbb';
    ctx.strokeRect(imageX - 0.5, y + 3.5, layout.imageWidth + 1, layout.imageHeight + 1);
    ctx.fillStyle = item.red ? RED : INK;
    item.caption.forEach((line, l) =>
      centredText(ctx, line, x, layout.cellWidth, y + layout.captionTop + l * CAPTION_LINE, 12),
    );
  });
  return { png: canvas.toBuffer('image/png'), layout };
}
