import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkSplit, type Dataset, type Split, toShared } from '../data/dataset.js';
import { readIdxFile } from '../data/idx.js';
import { DataError } from '../errors.js';
import type { OutputFile } from '../files.js';

/**
 * A run's data as IDX files, the format train_ddp.py reads: what the export writes into the folder
 * for a run on a folder of pictures, so that the continuation trains on exactly the pixels the run
 * was trained on (decoded, fitted and split once, here), and what `npm run import` evaluates on.
 *
 * The names are Fashion-MNIST's; grey images are `[n, height, width]` (magic 0x00000803), colour
 * ones `[n, height, width, 3]` (0x00000804, which IDX allows), and their files say `idx4`.
 */

/** The four files for images of `channels` channels: train images and labels, then test. */
export function runDataFiles(channels: number): readonly string[] {
  const images = channels === 1 ? 'idx3' : 'idx4';
  return [
    `train-images-${images}-ubyte`,
    'train-labels-idx1-ubyte',
    `t10k-images-${images}-ubyte`,
    't10k-labels-idx1-ubyte',
  ];
}

/** The dataset's splits as the four files, uncompressed. */
export function dataFiles(data: Dataset): OutputFile[] {
  const channels = data.channels ?? 1;
  const names = runDataFiles(channels);
  const image = channels === 1 ? [data.height, data.width] : [data.height, data.width, channels];
  return [data.train, data.test].flatMap((split, i) => {
    if (!(split.images instanceof Uint8Array)) {
      throw new DataError('the data has float32 pixels; a run folder holds grey or colour levels (uint8) only');
    }
    return [
      { name: names[2 * i], data: idx([split.count, ...image], split.images) },
      { name: names[2 * i + 1], data: idx([split.count], split.labels) },
    ];
  });
}

function idx(dims: readonly number[], values: Uint8Array): Uint8Array[] {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x0800 + dims.length, 0);
  dims.forEach((dim, i) => header.writeUInt32BE(dim, 4 + 4 * i));
  return [header, values];
}

export interface DataShape {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classNames: readonly string[];
}

/**
 * The four files in `dir` (each gzipped or not), checked against the images and classes the model
 * takes: a missing file, another size or channel count, a label past the classes is a DataError
 * that says which file.
 */
export async function readDataFiles(dir: string, shape: DataShape): Promise<Dataset> {
  const { height, width, channels, classNames } = shape;
  const names = runDataFiles(channels);
  const paths = names.map((name) => [`${name}.gz`, name].map((file) => join(dir, file)).find((p) => existsSync(p)));
  const missing = names.filter((_, i) => paths[i] === undefined);
  if (missing.length > 0) {
    const kind = channels === 1 ? 'grey' : `${channels}-channel`;
    throw new DataError(
      `"${dir}" lacks ${missing.join(', ')}: the run's data is ${height}x${width} ${kind} images as IDX files`,
    );
  }
  const split = async (images: string, labels: string): Promise<Split> => {
    const rank = channels === 1 ? 3 : 4;
    const [x, y] = await Promise.all([readIdxFile(images, rank), readIdxFile(labels, 1)]);
    const [count, ...image] = x.dims;
    const expected = channels === 1 ? [height, width] : [height, width, channels];
    if (String(image) !== String(expected)) {
      throw new DataError(`${images}: images of [${image.join(', ')}]; the model takes [${expected.join(', ')}]`);
    }
    if (y.dims[0] !== count) {
      throw new DataError(
        `${labels}: ${y.dims[0]} labels for the ${count} images of ${images}; they must be the same split`,
      );
    }
    const result = { images: toShared(x.data), labels: toShared(y.data), count };
    checkSplit(result, height * width * channels, classNames.length, labels);
    return result;
  };
  const [p0, p1, p2, p3] = paths as string[];
  const [train, test] = await Promise.all([split(p0, p1), split(p2, p3)]);
  return { train, test, height, width, channels, classNames };
}
