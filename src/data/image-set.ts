import { DataError } from '../errors.js';
import type { Dataset, ImageFolderOrigin, ResizeMode } from './dataset.js';
import { type FolderPlan, validationSplit } from './image-folder-plan.js';
import { checkImageFile, HEADER_BYTES, type ImageSize, MAX_IMAGE_PIXELS, readImageSize } from './image-header.js';
import { type DecodedImage, hasColour, prepareImage } from './image-pixels.js';

/**
 * A folder of pictures (see planImageFolder) decoded into training images: the sizes read from the
 * headers, every picture decoded, checked and fitted to one size and channel count. Shared by Node
 * (image-folder.ts, with its decoder and cache) and the browser page (its own decoder); only how
 * bytes are read and decoded differs.
 */

/** How a platform reads and decodes the folder's files, by their path in the plan. */
export interface ImageReader {
  /** The whole file. */
  read(path: string): Promise<Uint8Array>;
  /** At least the first `bytes` bytes of the file, or all of it when it is shorter. */
  readHead(path: string, bytes: number): Promise<Uint8Array>;
  /** Decodes a whole, checked file (see checkImageFile); a DataError starting with `name` when it cannot. */
  decode(bytes: Uint8Array, name: string): Promise<DecodedImage>;
}

export interface DecodeOptions {
  /** The training images' size. @default the most common size of the training pictures */
  readonly imageSize?: { readonly height: number; readonly width: number };
  /** @default 3 when any picture has colour, else 1 */
  readonly channels?: 1 | 3;
  /** How a picture of another size is fitted. @default 'stretch' */
  readonly resize?: ResizeMode;
  /** Larger pictures are refused (see MAX_IMAGE_PIXELS). */
  readonly maxImagePixels?: number;
  /** Leave out a picture that cannot be read, and list it, rather than stop. @default false */
  readonly skipBadImages?: boolean;
  /** Pictures read and decoded at once. @default 4 */
  readonly concurrency?: number;
  readonly onProgress?: (progress: DecodeProgress) => void;
}

export interface DecodeProgress {
  /** `sizes`: reading the headers for the default size; `decoding`: every picture. */
  readonly phase: 'sizes' | 'decoding';
  readonly done: number;
  readonly total: number;
}

/** A picture left out, and why (the message names it). */
export interface SkippedImage {
  readonly path: string;
  readonly reason: string;
}

/** Every picture of the plan that could be read, decoded, in the plan's order. */
export interface ImageSet {
  /** count x height x width x channels, NHWC, in shared memory. */
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  /** 1 for a picture of test/, 0 for one of train/. */
  readonly inTest: Uint8Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  readonly resize: ResizeMode;
  /** Whether the size was given, or the most common one; whether the channels were given, or found. */
  readonly sizeFrom: 'given' | 'most common';
  readonly channelsFrom: 'given' | 'found';
  /** Pictures of another size, fitted to it. */
  readonly resized: number;
  readonly skipped: readonly SkippedImage[];
}

/** Decodes the plan's pictures; `name` is the folder as the user named it, for messages. */
export async function decodeImageSet(
  reader: ImageReader,
  plan: FolderPlan,
  name: string,
  options: DecodeOptions = {},
): Promise<ImageSet> {
  const maxPixels = options.maxImagePixels ?? MAX_IMAGE_PIXELS;
  const resize = options.resize ?? 'stretch';
  const concurrency = options.concurrency ?? 4;
  const files = plan.files;
  const where = (path: string) => `${name.replace(/\/+$/, '')}/${plan.root}${path}`;
  const skipped = new Map<number, SkippedImage>();
  const fail = (index: number, error: unknown) => {
    if (!(error instanceof DataError)) throw error;
    skipped.set(index, { path: files[index].path, reason: error.message });
  };

  let size = options.imageSize;
  if (size === undefined) {
    const training = files.flatMap((file, index) => (file.split === 'train' ? [index] : []));
    const sizes = new Map<number, ImageSize>();
    await forEachFile(training, concurrency, options.skipBadImages, skipped, async (index) => {
      try {
        const path = plan.root + files[index].path;
        const found =
          readImageSize(await reader.readHead(path, HEADER_BYTES), where(files[index].path), maxPixels) ??
          readImageSize(await reader.read(path), where(files[index].path), maxPixels);
        if (found === undefined) throw new DataError(`${where(files[index].path)}: the JPEG file is truncated (no frame header)`);
        sizes.set(index, found);
      } catch (error) {
        fail(index, error);
      }
      options.onProgress?.({ phase: 'sizes', done: sizes.size + skipped.size, total: training.length });
    });
    size = mostCommonSize([...sizes.values()]);
  }
  const { height, width } = size;
  const given = options.channels;
  const channels = given ?? 3;
  const pixels = height * width * channels;
  const images = new Uint8Array(new SharedArrayBuffer(files.length * pixels));
  let colour = false;
  let resized = 0;
  let done = 0;
  const pending = files.map((_, index) => index).filter((index) => !skipped.has(index));
  await forEachFile(pending, concurrency, options.skipBadImages, skipped, async (index) => {
    const file = files[index];
    const label = where(file.path);
    try {
      const bytes = await reader.read(plan.root + file.path);
      const header = checkImageFile(bytes, label, maxPixels);
      const image = await reader.decode(bytes, label);
      if (image.width !== header.width || image.height !== header.height) {
        throw new DataError(`${label}: its header says ${header.width}x${header.height} pixels, but it decodes to ${image.width}x${image.height}`);
      }
      if (image.width !== width || image.height !== height) resized++;
      if (given === undefined && !colour) colour = hasColour(image);
      prepareImage(image, { height, width, channels, resize }, images.subarray(index * pixels, (index + 1) * pixels));
    } catch (error) {
      fail(index, error);
    }
    options.onProgress?.({ phase: 'decoding', done: ++done, total: pending.length });
  });

  const kept = files.map((_, index) => index).filter((index) => !skipped.has(index));
  // Grey pictures all: one channel, the red of each (red, green and blue are equal).
  const finalChannels: 1 | 3 = given ?? (colour ? 3 : 1);
  const finalPixels = height * width * finalChannels;
  const out =
    kept.length === files.length && finalChannels === channels
      ? images
      : new Uint8Array(new SharedArrayBuffer(kept.length * finalPixels));
  if (out !== images) {
    kept.forEach((index, k) => {
      const from = images.subarray(index * pixels, (index + 1) * pixels);
      if (finalChannels === channels) out.set(from, k * finalPixels);
      else for (let p = 0; p < finalPixels; p++) out[k * finalPixels + p] = from[3 * p];
    });
  }
  return {
    images: out,
    labels: Uint8Array.from(kept, (index) => files[index].label),
    inTest: Uint8Array.from(kept, (index) => (files[index].split === 'test' ? 1 : 0)),
    count: kept.length,
    height,
    width,
    channels: finalChannels,
    resize,
    sizeFrom: options.imageSize === undefined ? 'most common' : 'given',
    channelsFrom: given === undefined ? 'found' : 'given',
    resized,
    skipped: [...skipped.keys()].sort((a, b) => a - b).map((index) => skipped.get(index) as SkippedImage),
  };
}

/**
 * Runs `work` on each index, `concurrency` at a time. Without `skip`, once a file failed (its
 * index in `failed`), no new file starts; when the running ones have ended, the first failure in
 * the files' order is thrown, so that the message does not depend on which decode finished first.
 */
async function forEachFile(
  indices: readonly number[],
  concurrency: number,
  skip: boolean | undefined,
  failed: Map<number, SkippedImage>,
  work: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const before = failed.size;
  const run = async () => {
    while (next < indices.length && (skip === true || failed.size === before)) await work(indices[next++]);
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, run));
  if (skip !== true && failed.size > before) {
    const first = Math.min(...[...failed.keys()]);
    throw new DataError((failed.get(first) as SkippedImage).reason);
  }
}

/** The size most pictures have; among sizes as common, the largest. */
function mostCommonSize(sizes: readonly ImageSize[]): { height: number; width: number } {
  const counts = new Map<string, { height: number; width: number; count: number }>();
  for (const { height, width } of sizes) {
    const key = `${height}x${width}`;
    const entry = counts.get(key) ?? { height, width, count: 0 };
    entry.count++;
    counts.set(key, entry);
  }
  const [best] = [...counts.values()].sort(
    (a, b) => b.count - a.count || b.height * b.width - a.height * a.width || b.height - a.height,
  );
  if (best === undefined) throw new DataError('no training picture could be read');
  return best;
}

export interface SplitOptions {
  /** Without a test/ folder: the fraction of each class held out for testing. */
  readonly validationSplit?: number;
  /** Draws the held-out pictures. @default 1 */
  readonly seed?: number;
}

/**
 * Throws unless the folder has either a test/ folder or a validation split, not both: checked
 * before anything is decoded.
 */
export function checkSplitOptions(plan: FolderPlan, name: string, options: SplitOptions): void {
  const where = (path: string) => `${name.replace(/\/+$/, '')}/${plan.root}${path}`;
  const fraction = options.validationSplit;
  if (plan.hasTest && fraction !== undefined) {
    throw new DataError(`${where('test')} exists: --validation-split is for a folder without one; drop it, or remove test/`);
  }
  if (!plan.hasTest && fraction === undefined) {
    throw new DataError(
      `${name}: no test/ folder; add test/<class>/ as in train/, or hold out a part of train/ with --validation-split 0.2`,
    );
  }
}

/**
 * The decoded pictures as a Dataset: test/'s pictures are its test split; without test/, a seeded
 * stratified validation split of train/ (see validationSplit). `name` is the folder, for messages.
 */
export function toDataset(set: ImageSet, plan: FolderPlan, name: string, options: SplitOptions = {}): Dataset {
  checkSplitOptions(plan, name, options);
  const where = (path: string) => `${name.replace(/\/+$/, '')}/${plan.root}${path}`;
  const { classNames } = plan;
  const fraction = options.validationSplit;
  const trainIndices: number[] = [];
  const testIndices: number[] = [];
  for (let i = 0; i < set.count; i++) (set.inTest[i] === 1 ? testIndices : trainIndices).push(i);
  let origin: ImageFolderOrigin = { resize: set.resize };
  let train = trainIndices;
  let test = testIndices;
  if (fraction !== undefined) {
    const seed = options.seed ?? 1;
    const held = validationSplit(
      trainIndices.map((i) => set.labels[i]),
      classNames.length,
      fraction,
      seed,
    );
    train = trainIndices.filter((_, k) => !held[k]);
    test = trainIndices.filter((_, k) => held[k]);
    origin = { ...origin, validationSplit: { fraction, seed } };
  }
  const counts = new Array<number>(classNames.length).fill(0);
  for (const i of train) counts[set.labels[i]]++;
  const empty = counts.findIndex((count) => count === 0);
  if (empty >= 0) {
    throw new DataError(`${where(`train/${classNames[empty]}`)}: no picture of this class is left to train on`);
  }
  if (test.length === 0) throw new DataError(`${name}: no test picture is left`);
  return {
    train: gather(set, train),
    test: gather(set, test),
    height: set.height,
    width: set.width,
    channels: set.channels,
    classNames,
    imageFolder: origin,
  };
}

/** The pictures `indices` of the set, as a split in shared memory (no copy when they are one run). */
function gather(set: ImageSet, indices: readonly number[]): Dataset['train'] {
  const pixels = set.height * set.width * set.channels;
  const contiguous = indices.every((index, k) => index === indices[0] + k);
  const labels = new Uint8Array(new SharedArrayBuffer(indices.length));
  indices.forEach((index, k) => (labels[k] = set.labels[index]));
  if (contiguous && indices.length > 0) {
    const start = indices[0] * pixels;
    return { images: set.images.subarray(start, start + indices.length * pixels), labels, count: indices.length };
  }
  const images = new Uint8Array(new SharedArrayBuffer(indices.length * pixels));
  indices.forEach((index, k) => images.set(set.images.subarray(index * pixels, (index + 1) * pixels), k * pixels));
  return { images, labels, count: indices.length };
}
