import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import type { Dataset, Split } from './dataset.js';
import { downloadFashionMnist, FASHION_MNIST_MIRROR, type DownloadProgress } from './download.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_FILES, fashionMnistSplit } from './fashion-mnist-files.js';
import { readIdxFile } from './idx.js';

export { FASHION_MNIST_CLASSES, FASHION_MNIST_FILES } from './fashion-mnist-files.js';

/** Debian's package `dataset-fashion-mnist` installs the files here. */
export const DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';
/** Where a download goes, relative to the working directory. */
export const LOCAL_DIR = join('data', 'fashion-mnist');

export interface LoadFashionMnistOptions {
  /** A directory holding the four files (gzipped or not). When given, no other place is tried. */
  dir?: string;
  /**
   * Environment to read `FASHION_MNIST_DIR` (a directory, as `dir`) and `FASHION_MNIST_MIRROR`
   * (the download's base URL) from.
   * @default process.env
   */
  env?: Record<string, string | undefined>;
  /**
   * Directories tried, in order, after `dir` and `$FASHION_MNIST_DIR`.
   * @default ['./data/fashion-mnist', '/usr/share/datasets/fashion-mnist']
   */
  searchDirs?: readonly string[];
  /** Where the files are downloaded to when no directory has them. @default './data/fashion-mnist' */
  downloadDir?: string;
  /** Told how a download goes, when one is needed. */
  onDownloadProgress?: (progress: DownloadProgress) => void;
}

/**
 * Loads Fashion-MNIST into shared memory. Looks in `dir`, then `$FASHION_MNIST_DIR`, then
 * `./data/fashion-mnist`, then Debian's `/usr/share/datasets/fashion-mnist`; if none has the
 * files, downloads them into `./data/fashion-mnist` from the dataset's mirror, verified.
 */
export async function loadFashionMnist(options: LoadFashionMnistOptions = {}): Promise<Dataset> {
  const [trainImages, trainLabels, testImages, testLabels] = await locateFashionMnist(options);
  const [train, test] = await Promise.all([readSplit(trainImages, trainLabels), readSplit(testImages, testLabels)]);
  return { train, test, height: 28, width: 28, classNames: FASHION_MNIST_CLASSES };
}

/**
 * The paths of the four files (each gzipped or not), in the order of FASHION_MNIST_FILES, found
 * (or downloaded) as loadFashionMnist finds them; the web page's server serves these.
 */
export async function locateFashionMnist(options: LoadFashionMnistOptions = {}): Promise<string[]> {
  const dir = await locate(options);
  return FASHION_MNIST_FILES.map((file) => fileIn(dir, file) as string);
}

async function locate(options: LoadFashionMnistOptions): Promise<string> {
  const env = options.env ?? process.env;
  const explicit = options.dir ?? env.FASHION_MNIST_DIR;
  if (explicit !== undefined && explicit !== '') {
    const from = options.dir !== undefined ? 'data directory' : 'FASHION_MNIST_DIR';
    if (!isDirectory(explicit)) throw new DataError(`${from} "${explicit}" does not exist or is not a directory`);
    const missing = FASHION_MNIST_FILES.filter((file) => fileIn(explicit, file) === undefined);
    if (missing.length > 0) {
      const pictures = options.dir !== undefined ? '; a folder of your own pictures has a train/ folder instead' : '';
      throw new DataError(`${from} "${explicit}" lacks ${missing.map((f) => `${f}.gz`).join(', ')}${pictures}`);
    }
    return explicit;
  }
  const searchDirs = options.searchDirs ?? [LOCAL_DIR, DEBIAN_DIR];
  for (const candidate of searchDirs) {
    if (FASHION_MNIST_FILES.every((file) => fileIn(candidate, file) !== undefined)) return candidate;
  }
  const mirror = env.FASHION_MNIST_MIRROR || FASHION_MNIST_MIRROR;
  const downloadDir = options.downloadDir ?? LOCAL_DIR;
  try {
    await downloadFashionMnist({ dir: downloadDir, mirror, onProgress: options.onDownloadProgress });
  } catch (error) {
    const looked = searchDirs.length > 0 ? `not in ${searchDirs.join(' or ')}, and ` : '';
    throw new DataError(
      `Fashion-MNIST is ${looked}downloading it from ${mirror} failed (${(error as Error).message}). ` +
        "Install Debian's package (apt-get install dataset-fashion-mnist), or pass --data DIR with the four files.",
    );
  }
  return downloadDir;
}

/** The path of `file` (gzipped or raw) inside `dir`, or undefined. */
function fileIn(dir: string, file: string): string | undefined {
  for (const name of [`${file}.gz`, file]) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

async function readSplit(imagesPath: string, labelsPath: string): Promise<Split> {
  const [images, labels] = await Promise.all([readIdxFile(imagesPath, 3), readIdxFile(labelsPath, 1)]);
  return fashionMnistSplit(images, labels, { images: imagesPath, labels: labelsPath });
}
