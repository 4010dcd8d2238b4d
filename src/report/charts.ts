import type { EpochLog } from '../coordinator/config.js';
import { centredText, font, INK, whiteCanvas } from './canvas.js';
import { cellColors, type Classification } from './classification.js';

/** Cell geometry of the confusion matrix figure (exported for the tests that look at the picture). */
export const CONFUSION = { cell: 62, left: 120, top: 70 } as const;

/**
 * The confusion matrix: true class down, predicted across, counts in the cells, shaded by their
 * share of the row (the diagonal is the recall), as PNG bytes.
 */
export function drawConfusionMatrix(result: Classification, classNames: readonly string[]): Buffer {
  const n = classNames.length;
  const { cell, left, top } = CONFUSION;
  const { canvas, ctx } = whiteCanvas(left + n * cell + 20, top + n * cell + 110);
  ctx.fillStyle = INK;
  ctx.font = font(18, true);
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  ctx.fillText(
    `Confusion matrix on ${result.perClass.reduce((s, c) => s + c.support, 0)} test images (accuracy ${result.accuracy.toFixed(4)})`,
    canvas.width / 2,
    14,
  );
  result.matrix.forEach((row, t) => {
    const support = Math.max(
      1,
      row.reduce((a, b) => a + b, 0),
    );
    row.forEach((count, p) => {
      const colors = cellColors(count / support);
      ctx.fillStyle = colors.background;
      ctx.fillRect(left + p * cell, top + t * cell, cell, cell);
      ctx.fillStyle = colors.text;
      centredText(ctx, String(count), left + p * cell, cell, top + t * cell + cell / 2 - 8, 14);
    });
  });
  ctx.strokeStyle = '#999999';
  ctx.strokeRect(left, top, n * cell, n * cell);
  ctx.fillStyle = INK;
  classNames.forEach((name, i) => {
    ctx.font = font(12);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.fillText(name, left - 8, top + i * cell + cell / 2);
    ctx.save();
    ctx.translate(left + i * cell + cell / 2, top + n * cell + 8);
    ctx.rotate(-Math.PI / 4);
    ctx.textAlign = 'right';
    ctx.fillText(name, 0, 0);
    ctx.restore();
  });
  ctx.font = font(13, true);
  ctx.textAlign = 'center';
  ctx.fillText('predicted class', left + (n * cell) / 2, top + n * cell + 92);
  ctx.save();
  ctx.translate(16, top + (n * cell) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText('true class', 0, 0);
  ctx.restore();
  return canvas.toBuffer('image/png');
}

const SERIES = [
  { key: 'train', color: '#1f77b4' },
  { key: 'test', color: '#ff7f0e' },
] as const;

/** One panel of the learning curves and its margins around the plot (exported for the tests). */
export const CURVES_PANEL = { width: 420, height: 300, left: 60, top: 50, right: 20, bottom: 50 } as const;

/** Loss and accuracy per epoch, train and test, side by side, as PNG bytes. */
export function drawLearningCurves(history: readonly EpochLog[]): Buffer {
  const panel = CURVES_PANEL;
  const { canvas, ctx } = whiteCanvas(panel.width * 2, panel.height);
  const panels = [
    { title: 'Loss', values: [history.map((h) => h.loss), history.map((h) => h.testLoss)] },
    { title: 'Accuracy', values: [history.map((h) => h.accuracy), history.map((h) => h.testAccuracy)] },
  ];
  panels.forEach(({ title, values }, index) => {
    const x0 = index * panel.width + panel.left;
    const plotWidth = panel.width - panel.left - panel.right;
    const plotHeight = panel.height - panel.top - panel.bottom;
    const all = values.flat();
    let lo = Math.min(...all);
    let hi = Math.max(...all);
    const pad = (hi - lo) * 0.1 || 0.01;
    lo -= pad;
    hi += pad;
    const px = (epoch: number) =>
      x0 + (history.length === 1 ? plotWidth / 2 : ((epoch - 1) / (history.length - 1)) * plotWidth);
    const py = (value: number) => panel.top + (1 - (value - lo) / (hi - lo)) * plotHeight;
    ctx.fillStyle = INK;
    ctx.font = font(15, true);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    ctx.fillText(title, x0 + plotWidth / 2, 14);
    ctx.strokeStyle = '#888888';
    ctx.strokeRect(x0, panel.top, plotWidth, plotHeight);
    ctx.font = font(11);
    for (let t = 0; t <= 4; t++) {
      const value = lo + ((hi - lo) * t) / 4;
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      ctx.fillText(value.toFixed(3), x0 - 6, py(value));
    }
    history.forEach((h) => {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      ctx.fillText(String(h.epoch), px(h.epoch), panel.top + plotHeight + 6);
    });
    ctx.fillText('epoch', x0 + plotWidth / 2, panel.top + plotHeight + 24);
    SERIES.forEach(({ key, color }, s) => {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      values[s].forEach((v, i) => (i === 0 ? ctx.moveTo(px(i + 1), py(v)) : ctx.lineTo(px(i + 1), py(v))));
      ctx.stroke();
      values[s].forEach((v, i) => ctx.fillRect(px(i + 1) - 2.5, py(v) - 2.5, 5, 5));
      ctx.font = font(12);
      ctx.textAlign = 'left';
      ctx.textBaseline = 'middle';
      ctx.fillRect(x0 + plotWidth - 70, panel.top + 14 + s * 18, 14, 3);
      ctx.fillText(key, x0 + plotWidth - 50, panel.top + 15 + s * 18);
    });
    ctx.lineWidth = 1;
  });
  return canvas.toBuffer('image/png');
}
