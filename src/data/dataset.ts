import { DataError } from '../errors.js';

/**
 * One split of an image-classification dataset: `count` images, one label each, each image
 * `height x width x channels` values in NHWC order (a colour image's red, green and blue of a pixel
 * next to each other, as Keras has them). Pixels are either uint8 levels (scaled to [0, 1] by the
 * trainer, as the tutorial's `images / 255.0`) or float32 values used as they are.
 */
export interface Split {
  readonly images: Uint8Array | Float32Array;
  /** Class indices, 0 to classNames.length - 1. */
  readonly labels: Uint8Array;
  readonly count: number;
}

/** A dense image-classification dataset of `height x width` images of `channels` channels. */
export interface Dataset {
  readonly train: Split;
  readonly test: Split;
  readonly height: number;
  readonly width: number;
  /** 1 for grey levels, 3 for red, green and blue. @default 1 */
  readonly channels?: number;
  /** One name per class; their number is the model's output size. */
  readonly classNames: readonly string[];
  /**
   * How a folder of pictures became this dataset (see loadImageFolder): a model trained on it
   * records this, so that a new picture can be prepared as its training images were.
   */
  readonly imageFolder?: ImageFolderOrigin;
}

/** How pictures of other sizes are fitted to the dataset's: `stretch` to it, or `pad`, keeping their aspect ratio. */
export type ResizeMode = 'stretch' | 'pad';

export interface ImageFolderOrigin {
  readonly resize: ResizeMode;
  /** The held-out fraction and the seed that drew it, when the folder had no test/. */
  readonly validationSplit?: { readonly fraction: number; readonly seed: number };
}

/** The channels a model on this data takes as input: grey levels or red, green and blue. */
export const CHANNEL_COUNTS = [1, 3] as const;

/** The dataset's channels (1 when it does not say). */
export function channelsOf(data: Pick<Dataset, 'channels'>): number {
  return data.channels ?? 1;
}

/**
 * Checks that a split is consistent: as many labels as images, the pixel count matches, and every
 * label names a class. `name` says which split in the message.
 */
export function checkSplit(split: Split, pixels: number, classes: number, name: string): void {
  if (!(split.images instanceof Uint8Array || split.images instanceof Float32Array) || !(split.labels instanceof Uint8Array)) {
    throw new DataError(`${name}: images must be a Uint8Array or Float32Array and labels a Uint8Array`);
  }
  if (!Number.isInteger(split.count) || split.count < 0 || split.labels.length !== split.count) {
    throw new DataError(`${name}: ${split.labels.length} labels but count is ${split.count}; they must match`);
  }
  if (split.images.length !== split.count * pixels) {
    throw new DataError(
      `${name}: ${split.images.length} pixel values for ${split.count} images of ${pixels} values (${split.count * pixels} expected); ` +
        'check the image size (height x width x channels) and that images and labels come from the same split',
    );
  }
  for (let i = 0; i < split.count; i++) {
    if (split.labels[i] >= classes) {
      throw new DataError(`${name}: label ${split.labels[i]} at index ${i} is outside the ${classes} classes 0-${classes - 1}`);
    }
  }
}

/**
 * Checks a whole dataset before any worker starts: image size, channels, class names, and both
 * splits (see checkSplit), each non-empty.
 */
export function checkDataset(data: Dataset): void {
  const channels = channelsOf(data);
  const pixels = data.height * data.width * channels;
  const classes = data.classNames.length;
  if (!(Number.isInteger(data.height) && Number.isInteger(data.width) && pixels > 0 && classes >= 2)) {
    throw new DataError(
      `data must have positive integer height and width and at least 2 class names, got ${data.height}x${data.width} and ${classes}`,
    );
  }
  if (!CHANNEL_COUNTS.includes(channels as 1 | 3)) {
    throw new DataError(`data must have 1 channel (grey) or 3 (red, green, blue), got ${JSON.stringify(data.channels)}`);
  }
  checkSplit(data.train, pixels, classes, 'training data');
  checkSplit(data.test, pixels, classes, 'test data');
  if (data.train.count === 0 || data.test.count === 0) {
    throw new DataError(
      `data must have at least one training and one test image, got ${data.train.count} and ${data.test.count}`,
    );
  }
}

/** Copies a typed array into SharedArrayBuffer memory, unless it already lives there. */
export function toShared<T extends Uint8Array | Float32Array>(values: T): T {
  if (values.buffer instanceof SharedArrayBuffer) return values;
  // Not values.constructor: a Node Buffer is a Uint8Array whose constructor is deprecated.
  const buffer = new SharedArrayBuffer(values.byteLength);
  const shared = (values instanceof Float32Array ? new Float32Array(buffer) : new Uint8Array(buffer)) as T;
  shared.set(values);
  return shared;
}

/** The same split with its arrays in shared memory, so every worker reads them without a copy. */
export function sharedSplit(split: Split): Split {
  return { images: toShared(split.images), labels: toShared(split.labels), count: split.count };
}
