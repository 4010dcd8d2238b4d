import { DataError } from '../errors.js';

/** One split of an image-classification dataset: `count` images of uint8 pixels, one label each. */
export interface Split {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly count: number;
}

/** A dense image-classification dataset: images are `height x width` uint8 grey levels. */
export interface Dataset {
  readonly train: Split;
  readonly test: Split;
  readonly height: number;
  readonly width: number;
  readonly classNames: readonly string[];
}

/**
 * Checks that a split is consistent: as many labels as images, the pixel count matches, and every
 * label names a class. `name` says which split in the message.
 */
export function checkSplit(split: Split, pixels: number, classes: number, name: string): void {
  if (split.labels.length !== split.count || split.images.length !== split.count * pixels) {
    throw new DataError(
      `${name}: ${split.images.length / pixels} images but ${split.labels.length} labels (count says ${split.count}); ` +
        'images and labels must come from the same split',
    );
  }
  for (let i = 0; i < split.count; i++) {
    if (split.labels[i] >= classes) {
      throw new DataError(`${name}: label ${split.labels[i]} at index ${i} is outside the ${classes} classes 0-${classes - 1}`);
    }
  }
}

/** Copies a byte array into SharedArrayBuffer memory, unless it already lives there. */
export function toShared(bytes: Uint8Array): Uint8Array {
  if (bytes.buffer instanceof SharedArrayBuffer) return bytes;
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  shared.set(bytes);
  return shared;
}

/** The same split with its arrays in shared memory, so every worker reads them without a copy. */
export function sharedSplit(split: Split): Split {
  return { images: toShared(split.images), labels: toShared(split.labels), count: split.count };
}
