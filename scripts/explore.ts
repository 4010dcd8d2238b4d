/**
 * `npm run explore`: what the tutorial prints about the data, and 25 of its training images; with
 * `--augment`, a few of them as the trainer's augmentation changes them, epoch after epoch.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IMAGE_FOLDER_FLAGS, IMAGE_FOLDER_USAGE, loadData, parseImageFolderFlags } from '../src/cli/data.js';
import { parseFlags } from '../src/cli/flags.js';
import { DEFAULTS, checkNumber } from '../src/coordinator/options.js';
import { AUGMENT_USAGE, checkAugmentFits, copyTransformed, parseAugment, transformOf } from '../src/data/augment.js';
import { channelsOf } from '../src/data/dataset.js';
import { isUserError } from '../src/errors.js';
import { drawImageGrid } from '../src/report/image-grid.js';

/** augment.png's rows (images) and the epochs shown beside each. */
const AUGMENTED_ROWS = 6;
const AUGMENTED_EPOCHS = 5;

const USAGE = `Usage: npm run explore -- [--data DIR] [--out DIR] [--augment LIST [--seed N]]

Prints the shapes, pixel range and class counts of Fashion-MNIST (or a folder of your own
pictures), and writes explore.png: 25 training images with their class names, the first 25 of
Fashion-MNIST, or of a folder the first of each class in turn (default --out: runs/explore).

With --augment (as npm run train's: ${AUGMENT_USAGE}), also writes augment.png: ${AUGMENTED_ROWS} of those
images, each beside the ${AUGMENTED_EPOCHS} versions of it that the first ${AUGMENTED_EPOCHS} epochs of a run seeded --seed
(default: ${DEFAULTS.seed}) train on.

${IMAGE_FOLDER_USAGE}`;

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    data: { type: 'string' },
    out: { type: 'string' },
    augment: { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    ...IMAGE_FOLDER_FLAGS,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const augment = values.augment === undefined ? undefined : parseAugment(values.augment);
  const seed =
    values.seed === undefined ? DEFAULTS.seed : checkNumber('seed', Number(values.seed), '--seed', `"${values.seed}"`);
  const { data, summary } = await loadData(values.data, parseImageFolderFlags(values), 1);
  checkAugmentFits(augment, data.height, data.width, '--augment');
  for (const line of summary) console.log(line);
  const { train, test, height, width, classNames } = data;
  const channels = channelsOf(data);
  const shape = (count: number) => `(${[count, height, width, ...(channels === 1 ? [] : [channels])].join(', ')})`;
  console.log(`Train Images Shape: ${shape(train.count)}`);
  console.log(`Train Labels Shape: (${train.count},)`);
  console.log(`Test Images Shape: ${shape(test.count)}`);
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
  const pixels = height * width * channels;
  // A folder's pictures come class by class: the first of each class in turn shows them all.
  const shown =
    data.imageFolder === undefined
      ? Array.from({ length: Math.min(25, train.count) }, (_, i) => i)
      : roundRobin(train.labels, 25);
  const items = shown.map((i) => ({
    pixels: (train.images as Uint8Array).subarray(i * pixels, (i + 1) * pixels),
    caption: [classNames[train.labels[i]]],
    red: false,
  }));
  const path = join(out, 'explore.png');
  const grid = drawImageGrid(items, { columns: 5, width, height, channels, greyAsInk: data.imageFolder === undefined });
  await writeFile(path, grid.png);
  console.log(`Wrote ${path}`);
  if (augment === undefined) return;
  // Each image, then what epochs 1, 2, ... make of it: the trainer's own transform and copy.
  const versions = shown.slice(0, AUGMENTED_ROWS).flatMap((i) => [
    { ...items[shown.indexOf(i)], caption: [classNames[train.labels[i]], 'as it is'] },
    ...Array.from({ length: AUGMENTED_EPOCHS }, (_, epoch) => {
      const t = transformOf(augment, seed, epoch, i);
      const copy = new Uint8Array(pixels);
      copyTransformed(train.images as Uint8Array, i * pixels, copy, 0, height, width, channels, t);
      const moved = t.dx === 0 && t.dy === 0 ? 'not moved' : `moved ${signed(t.dx)}, ${signed(t.dy)}`;
      return { pixels: copy, caption: [`epoch ${epoch + 1}`, t.flip ? `flipped, ${moved}` : moved], red: false };
    }),
  ]);
  const augmentPath = join(out, 'augment.png');
  const augmented = drawImageGrid(versions, {
    columns: AUGMENTED_EPOCHS + 1,
    width,
    height,
    channels,
    greyAsInk: data.imageFolder === undefined,
  });
  await writeFile(augmentPath, augmented.png);
  console.log(
    `Wrote ${augmentPath}: ${versions.length / (AUGMENTED_EPOCHS + 1)} training images, each as it is and in epochs 1-${AUGMENTED_EPOCHS} of a run seeded ${seed} (x right, y down)`,
  );
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

/** Up to `count` indices: the first image of each class, then the second of each, and so on. */
function roundRobin(labels: Uint8Array, count: number): number[] {
  const byClass = new Map<number, number[]>();
  labels.forEach((label, i) => byClass.set(label, [...(byClass.get(label) ?? []), i]));
  const queues = [...byClass.keys()].sort((a, b) => a - b).map((label) => byClass.get(label) as number[]);
  const out: number[] = [];
  for (let round = 0; out.length < count && queues.some((q) => round < q.length); round++) {
    for (const queue of queues) if (round < queue.length && out.length < count) out.push(queue[round]);
  }
  return out;
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
