import { centredText, drawGreyImage, INK, RED, whiteCanvas } from './canvas.js';
import type { GridItem } from './predictions.js';

export type { GridItem } from './predictions.js';

/** Where things are in a grid, so that tests can look at what was drawn. */
export interface GridLayout {
  readonly columns: number;
  readonly rows: number;
  readonly cellWidth: number;
  readonly cellHeight: number;
  readonly imageSize: number;
  /** The caption area of a cell, relative to the cell's top-left corner. */
  readonly captionTop: number;
  readonly captionHeight: number;
  readonly width: number;
  readonly height: number;
}

const SCALE = 3;
const CAPTION_LINE = 15;

export function gridLayout(count: number, columns: number, side: number, captionLines: number): GridLayout {
  const imageSize = side * SCALE;
  const cellWidth = imageSize + 36;
  const captionTop = imageSize + 8;
  const captionHeight = captionLines * CAPTION_LINE + 4;
  const cellHeight = captionTop + captionHeight + 6;
  const rows = Math.ceil(count / columns);
  return {
    columns,
    rows,
    cellWidth,
    cellHeight,
    imageSize,
    captionTop,
    captionHeight,
    width: columns * cellWidth,
    height: rows * cellHeight,
  };
}

/** A grid of captioned images, as the tutorial's `plt.subplot` figures, as PNG bytes. */
export function drawImageGrid(
  items: readonly GridItem[],
  options: { columns: number; side: number },
): { png: Buffer; layout: GridLayout } {
  const lines = Math.max(1, ...items.map((item) => item.caption.length));
  const layout = gridLayout(items.length, options.columns, options.side, lines);
  const { canvas, ctx } = whiteCanvas(layout.width, layout.height);
  items.forEach((item, i) => {
    const x = (i % layout.columns) * layout.cellWidth;
    const y = Math.floor(i / layout.columns) * layout.cellHeight;
    const imageX = x + (layout.cellWidth - layout.imageSize) / 2;
    drawGreyImage(ctx, item.pixels, options.side, options.side, imageX, y + 4, SCALE);
    ctx.strokeStyle = '#bbbbbb';
    ctx.strokeRect(imageX - 0.5, y + 3.5, layout.imageSize + 1, layout.imageSize + 1);
    ctx.fillStyle = item.red ? RED : INK;
    item.caption.forEach((line, l) =>
      centredText(ctx, line, x, layout.cellWidth, y + layout.captionTop + l * CAPTION_LINE, 12),
    );
  });
  return { png: canvas.toBuffer('image/png'), layout };
}
