/**
 * `npm run pictures`: Fashion-MNIST written out as a folder of pictures, train/<class>/ and
 * test/<class>/, PNG or JPEG, grey or tinted a colour per class: a folder to try `--data DIR` on,
 * laid out as your own pictures would be.
 */
import { Transformer } from '@napi-rs/image';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags } from '../src/cli/flags.js';
import { checkNumber } from '../src/coordinator/options.js';
import { FASHION_MNIST_CLASSES, loadFashionMnist } from '../src/data/fashion-mnist.js';
import { isUserError, OptionError } from '../src/errors.js';

const USAGE = `Usage: npm run pictures -- --out DIR [--train N] [--test N] [--format png|jpeg] [--tint] [--data DIR]

Writes the first N training and test images of Fashion-MNIST as picture files in
DIR/train/<class>/ and DIR/test/<class>/ (class folders named after the classes, "/" as "-"):
  --train N, --test N   how many of each (default: 6000 and 1000)
  --format F            png (lossless, the default) or jpeg (quality 90)
  --tint                in colour: each class a hue of the same brightness, so that only the
                        colour tells the classes apart
  --data DIR            where Fashion-MNIST is (as for npm run train)`;

/** Hues around the circle at the same luma (ITU-R 601), one per class. */
function tintOf(label: number): [number, number, number] {
  const u = 45 * Math.cos((2 * Math.PI * label) / 10);
  const v = 45 * Math.sin((2 * Math.PI * label) / 10);
  return [150 + 1.14 * v, 150 - 0.395 * u - 0.581 * v, 150 + 2.032 * u].map(Math.round) as [number, number, number];
}

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    out: { type: 'string' },
    train: { type: 'string' },
    test: { type: 'string' },
    format: { type: 'string' },
    tint: { type: 'boolean' },
    data: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.out === undefined || values.out === '') throw new OptionError('--out DIR is required (see --help)');
  if (existsSync(values.out)) throw new OptionError(`--out "${values.out}" exists already; pick a new directory`);
  const format = values.format ?? 'png';
  if (format !== 'png' && format !== 'jpeg') throw new OptionError(`--format must be png or jpeg, got "${format}"`);
  const data = await loadFashionMnist({ dir: values.data });
  const counts = {
    train:
      values.train === undefined
        ? 6000
        : checkNumber('batchSize', Number(values.train), '--train', JSON.stringify(values.train)),
    test:
      values.test === undefined
        ? 1000
        : checkNumber('batchSize', Number(values.test), '--test', JSON.stringify(values.test)),
  };
  for (const split of ['train', 'test'] as const) {
    const { images, labels, count } = data[split];
    const n = Math.min(count, counts[split]);
    for (let i = 0; i < n; i++) {
      const tint = values.tint ? tintOf(labels[i]) : [255, 255, 255];
      const rgba = new Uint8Array(784 * 4);
      for (let p = 0; p < 784; p++) {
        for (let c = 0; c < 3; c++) rgba[4 * p + c] = Math.round((images[i * 784 + p] * tint[c]) / 255);
        rgba[4 * p + 3] = 255;
      }
      const picture = Transformer.fromRgbaPixels(rgba, 28, 28);
      const folder = join(values.out, split, FASHION_MNIST_CLASSES[labels[i]].replace('/', '-'));
      mkdirSync(folder, { recursive: true });
      const name = `${String(i).padStart(5, '0')}.${format === 'png' ? 'png' : 'jpg'}`;
      writeFileSync(join(folder, name), format === 'png' ? await picture.png() : await picture.jpeg(90));
    }
    console.log(`Wrote ${n} ${split === 'train' ? 'training' : 'test'} pictures in ${join(values.out, split)}`);
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
