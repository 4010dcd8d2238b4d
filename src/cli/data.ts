import type { Dataset, ResizeMode } from '../data/dataset.js';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { IMAGE_EXTENSIONS } from '../data/image-header.js';
import { type ImageFolderData, isImageFolder, loadImageFolder } from '../data/image-folder.js';
import { OptionError } from '../errors.js';
import { formatBytes } from './progress.js';

/**
 * `--data DIR` for the commands that read data: the four Fashion-MNIST files, or a folder of your
 * own pictures (DIR/train/<class>/...), with the flags that say how to make training images of them.
 */

export const IMAGE_FOLDER_FLAGS = {
  'image-size': { type: 'string' },
  channels: { type: 'string' },
  resize: { type: 'string' },
  'validation-split': { type: 'string' },
  cache: { type: 'string' },
  'skip-bad-images': { type: 'boolean' },
} as const;

export const IMAGE_FOLDER_USAGE = `For a folder of your own pictures, --data DIR with DIR/train/<class>/*.{png,jpg,jpeg,webp}
and DIR/test/<class>/* (the classes: the sub-folders' names, sorted):
  --image-size HxW  the training images' size, e.g. 64x64 or 64 (default: the most common size)
  --resize MODE     a picture of another size is stretched to it (stretch) or fitted inside it,
                    its aspect ratio kept, on black (pad) (default: stretch)
  --channels N      1 (grey) or 3 (red, green, blue) (default: 3 when any picture has colour)
  --validation-split F
                    without DIR/test: hold out a fraction F of each class for testing, drawn
                    with --seed (e.g. 0.2)
  --cache DIR       where the decoded pictures are kept for the next run (default: DIR/.image-cache)
  --skip-bad-images leave out pictures that cannot be read, and list them, rather than stop`;

export interface ImageFolderArgs {
  readonly imageSize?: { readonly height: number; readonly width: number };
  readonly channels?: 1 | 3;
  readonly resize?: ResizeMode;
  readonly validationSplit?: number;
  readonly cacheDir?: string;
  readonly skipBadImages: boolean;
  /** The flags given, as `--name`, for the message when the data is no folder of pictures. */
  readonly given: readonly string[];
}

/** The largest side of a training image: 2048 x 2048 x 3 is 12 MB an image. */
const MAX_SIDE = 2048;

/** Reads the image-folder flags from parseFlags' values; a bad one throws an OptionError naming it. */
export function parseImageFolderFlags(values: Record<string, string | boolean | undefined>): ImageFolderArgs {
  const raw = (flag: string) => values[flag] as string | undefined;
  const given = Object.keys(IMAGE_FOLDER_FLAGS)
    .filter((flag) => values[flag] !== undefined && values[flag] !== false)
    .map((flag) => `--${flag}`);
  const args: {
    -readonly [K in keyof ImageFolderArgs]: ImageFolderArgs[K];
  } = { skipBadImages: values['skip-bad-images'] === true, given };
  const size = raw('image-size');
  if (size !== undefined) {
    const match = /^(\d+)(?:x(\d+))?$/.exec(size);
    const [height, width] = match === null ? [NaN, NaN] : [Number(match[1]), Number(match[2] ?? match[1])];
    const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= MAX_SIDE;
    if (!ok(height) || !ok(width)) {
      throw new OptionError(
        `--image-size must be HEIGHTxWIDTH or a side, each an integer between 1 and ${MAX_SIDE}, got ${JSON.stringify(size)}`,
      );
    }
    args.imageSize = { height, width };
  }
  const channels = raw('channels');
  if (channels !== undefined) {
    if (channels !== '1' && channels !== '3') {
      throw new OptionError(`--channels must be 1 (grey) or 3 (red, green, blue), got ${JSON.stringify(channels)}`);
    }
    args.channels = Number(channels) as 1 | 3;
  }
  const resize = raw('resize');
  if (resize !== undefined) {
    if (resize !== 'stretch' && resize !== 'pad') {
      throw new OptionError(`--resize must be stretch or pad, got ${JSON.stringify(resize)}`);
    }
    args.resize = resize;
  }
  const split = raw('validation-split');
  if (split !== undefined) {
    const fraction = Number(split);
    if (split.trim() === '' || !(fraction > 0 && fraction < 1)) {
      throw new OptionError(
        `--validation-split must be a number between 0 and 1, e.g. 0.2, got ${JSON.stringify(split)}`,
      );
    }
    args.validationSplit = fraction;
  }
  const cache = raw('cache');
  if (cache === '') throw new OptionError('--cache needs a directory, got ""');
  if (cache !== undefined) args.cacheDir = cache;
  return args;
}

export interface LoadedData {
  readonly data: Dataset;
  /** Lines that say what was read, for a folder of pictures; none for Fashion-MNIST. */
  readonly summary: readonly string[];
}

/**
 * The data `--data` names: a folder of pictures when it has train/, else Fashion-MNIST, found as
 * loadFashionMnist finds it. `seed` draws a validation split. Progress goes to stderr on a terminal.
 */
export async function loadData(dir: string | undefined, folder: ImageFolderArgs, seed: number): Promise<LoadedData> {
  const progress = (line: string, last: boolean) => {
    if (!process.stderr.isTTY) return;
    process.stderr.write(`\r${line}   ${last ? '\n' : ''}`);
  };
  if (dir === undefined || !isImageFolder(dir)) {
    if (folder.given.length > 0) {
      const where = dir === undefined ? 'Fashion-MNIST (no --data)' : `"${dir}" has no train/ folder`;
      throw new OptionError(
        `${folder.given.join(', ')}: for a folder of pictures (--data DIR with DIR/train/<class>/); ${where}`,
      );
    }
    const data = await loadFashionMnist({
      dir,
      onDownloadProgress: ({ file, receivedBytes, totalBytes }) => {
        const of = totalBytes === undefined ? '' : ` of ${formatBytes(totalBytes)}`;
        progress(`Downloading ${file}.gz: ${formatBytes(receivedBytes)}${of}`, receivedBytes === totalBytes);
      },
    });
    return { data, summary: [] };
  }
  let shown = 0;
  const data = await loadImageFolder({
    dir,
    imageSize: folder.imageSize,
    channels: folder.channels,
    resize: folder.resize,
    validationSplit: folder.validationSplit,
    seed,
    cacheDir: folder.cacheDir,
    skipBadImages: folder.skipBadImages,
    onProgress: ({ phase, done, total }) => {
      const now = performance.now();
      if (done < total && now - shown < 100) return;
      shown = now;
      const what = phase === 'sizes' ? 'Reading the pictures’ sizes' : 'Decoding the pictures';
      progress(`${what}: ${done}/${total}`, done === total);
    },
  });
  return { data, summary: describeImageFolder(data) };
}

/** At most this many skipped pictures are listed one per line; the rest are counted. */
const LISTED = 20;

/** What was read from a folder of pictures, in a few lines a person reads before training starts. */
export function describeImageFolder(data: ImageFolderData): string[] {
  const { summary, classNames } = data;
  const names = classNames.length <= 12 ? classNames.join(', ') : `${classNames.slice(0, 12).join(', ')}, …`;
  const kind = data.channels === 3 ? 'colour (3 channels)' : 'grey (1 channel)';
  const size =
    summary.sizeFrom === 'given'
      ? `${data.height}x${data.width}`
      : `${data.height}x${data.width} (the most common size)`;
  const found =
    summary.channelsFrom === 'found' ? (data.channels === 3 ? ': some have colour' : ': none has colour') : '';
  const split = data.imageFolder?.validationSplit;
  const test = split === undefined ? 'test' : `held-out (${split.fraction} of each class, seed ${split.seed})`;
  const lines = [
    `Pictures in ${summary.dir}: ${classNames.length} classes (${names}); ${data.train.count} training and ${data.test.count} ${test} images, ${size}, ${kind}${found}`,
  ];
  if (summary.resized > 0) {
    const how =
      data.imageFolder?.resize === 'pad'
        ? 'fitted inside it, aspect ratio kept (--resize pad)'
        : 'stretched to it (--resize stretch)';
    lines.push(`  ${summary.resized} pictures of another size were ${how}`);
  }
  const cache = summary.cache;
  if (cache === undefined) lines.push(`  decoded in ${summary.seconds.toFixed(1)} s`);
  else if ('error' in cache) {
    lines.push(
      `  decoded in ${summary.seconds.toFixed(1)} s; cannot keep them in ${cache.path} (${cache.error}): the next run decodes again (--cache DIR keeps them elsewhere)`,
    );
  } else if (cache.hit) lines.push(`  read from ${cache.path} in ${summary.seconds.toFixed(2)} s`);
  else lines.push(`  decoded in ${summary.seconds.toFixed(1)} s and kept in ${cache.path} for the next run`);
  if (summary.skipped.length > 0) {
    lines.push(`  skipped ${summary.skipped.length} that could not be read (--skip-bad-images):`);
    for (const { reason } of summary.skipped.slice(0, LISTED)) lines.push(`    ${reason}`);
    if (summary.skipped.length > LISTED) lines.push(`    and ${summary.skipped.length - LISTED} more`);
  }
  if (summary.ignored.length > 0) {
    const some = summary.ignored.slice(0, 3).join(', ');
    const more = summary.ignored.length > 3 ? `, and ${summary.ignored.length - 3} more` : '';
    lines.push(
      `  ignored ${summary.ignored.length} files that are not ${IMAGE_EXTENSIONS.join(', ')} pictures in a class folder: ${some}${more}`,
    );
  }
  return lines;
}
