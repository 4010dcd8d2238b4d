import type { EpochLog } from '../coordinator/config.js';

const PANEL = { width: 420, height: 280, left: 56, top: 36, right: 16, bottom: 44 } as const;
const SERIES = [
  { name: 'train', color: '#1f77b4' },
  { name: 'test', color: '#ff7f0e' },
] as const;

/**
 * The learning curves as SVG, as Node's learning-curves.png draws them: loss and accuracy per
 * epoch, train and test, side by side.
 */
export function learningCurvesSvg(history: readonly EpochLog[]): string {
  const panels = [
    { title: 'Loss', values: [history.map((h) => h.loss), history.map((h) => h.testLoss)] },
    { title: 'Accuracy', values: [history.map((h) => h.accuracy), history.map((h) => h.testAccuracy)] },
  ];
  const width = PANEL.width * 2;
  const parts = panels.map(({ title, values }, index) => {
    const x0 = index * PANEL.width + PANEL.left;
    const plotWidth = PANEL.width - PANEL.left - PANEL.right;
    const plotHeight = PANEL.height - PANEL.top - PANEL.bottom;
    const all = values.flat();
    const pad = (Math.max(...all) - Math.min(...all)) * 0.1 || 0.01;
    const lo = Math.min(...all) - pad;
    const hi = Math.max(...all) + pad;
    const px = (epoch: number) =>
      x0 + (history.length === 1 ? plotWidth / 2 : ((epoch - 1) / (history.length - 1)) * plotWidth);
    const py = (value: number) => PANEL.top + (1 - (value - lo) / (hi - lo)) * plotHeight;
    const ticks = [0, 1, 2, 3, 4].map((t) => lo + ((hi - lo) * t) / 4);
    return [
      `<text x="${x0 + plotWidth / 2}" y="20" text-anchor="middle" font-weight="bold">${title}</text>`,
      `<rect x="${x0}" y="${PANEL.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#888"/>`,
      ...ticks.map(
        (v) => `<text x="${x0 - 6}" y="${py(v) + 4}" text-anchor="end" font-size="11">${v.toFixed(3)}</text>`,
      ),
      ...history.map(
        (h) =>
          `<text x="${px(h.epoch)}" y="${PANEL.top + plotHeight + 16}" text-anchor="middle" font-size="11">${h.epoch}</text>`,
      ),
      `<text x="${x0 + plotWidth / 2}" y="${PANEL.top + plotHeight + 34}" text-anchor="middle" font-size="12">epoch</text>`,
      ...SERIES.map(({ name, color }, s) => {
        const points = values[s].map((v, i) => `${px(i + 1)},${py(v)}`);
        const marks = values[s].map((v, i) => `<circle cx="${px(i + 1)}" cy="${py(v)}" r="3" fill="${color}"/>`);
        const key = `<line x1="${x0 + plotWidth - 70}" x2="${x0 + plotWidth - 56}" y1="${PANEL.top + 14 + s * 18}" y2="${PANEL.top + 14 + s * 18}" stroke="${color}" stroke-width="3"/><text x="${x0 + plotWidth - 50}" y="${PANEL.top + 18 + s * 18}" font-size="12">${name}</text>`;
        return `<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>${marks.join('')}${key}`;
      }),
    ].join('');
  });
  const summary = history
    .map((h) => `epoch ${h.epoch}: loss ${h.loss.toFixed(4)}, test accuracy ${h.testAccuracy.toFixed(4)}`)
    .join('; ');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${PANEL.height}" width="${width}" height="${PANEL.height}" role="img" aria-label="Learning curves: ${summary}" font-family="system-ui, sans-serif">${parts.join('')}</svg>`;
}
