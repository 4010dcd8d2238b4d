/** `npm run explore`: what the tutorial prints about the data, and its first 25 training images. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { parseFlags } from '../src/cli/flags.js';
import { isUserError } from '../src/errors.js';
import { drawImageGrid } from '../src/report/image-grid.js';

const USAGE = `Usage: npm run explore -- [--data DIR] [--out DIR]

Prints the shapes, pixel range and class counts of Fashion-MNIST, and writes explore.png: the first
25 training images with their class names (default --out: runs/explore).`;

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    data: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const data = await loadFashionMnist({ dir: values.data });
  const { train, test, height, width, classNames } = data;
  console.log(`Train Images Shape: (${train.count}, ${height}, ${width})`);
  console.log(`Train Labels Shape: (${train.count},)`);
  console.log(`Test Images Shape: (${test.count}, ${height}, ${width})`);
  console.log(`Test Labels Shape: (${test.count},)`);
  let min = 255;
  let max = 0;
  for (const v of train.images) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  console.log(
    `Pixel range: ${min} to ${max} (scaled to ${(min / 255).toFixed(1)} to ${(max / 255).toFixed(1)} for training)`,
  );
  const counts = (labels: Uint8Array) => classNames.map((_, c) => labels.reduce((n, l) => n + (l === c ? 1 : 0), 0));
  const trainCounts = counts(train.labels);
  const testCounts = counts(test.labels);
  const widthOfName = Math.max(...classNames.map((n) => n.length));
  console.log(`${'class'.padEnd(widthOfName + 4)}  train   test`);
  classNames.forEach((name, c) =>
    console.log(
      `${c} ${name.padEnd(widthOfName + 2)}  ${String(trainCounts[c]).padStart(5)}  ${String(testCounts[c]).padStart(5)}`,
    ),
  );
  const out = values.out ?? join('runs', 'explore');
  await mkdir(out, { recursive: true });
  const pixels = height * width;
  const items = Array.from({ length: 25 }, (_, i) => ({
    pixels: (train.images as Uint8Array).subarray(i * pixels, (i + 1) * pixels),
    caption: [classNames[train.labels[i]]],
    red: false,
  }));
  const path = join(out, 'explore.png');
  await writeFile(path, drawImageGrid(items, { columns: 5, width, height }).png);
  console.log(`Wrote ${path}`);
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
