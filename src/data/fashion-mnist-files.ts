import { DataError } from '../errors.js';
import { checkSplit, type Split, toShared } from './dataset.js';
import type { IdxArray } from './idx-parse.js';

/**
 * Fashion-MNIST's classes and files, and the checks its files get once parsed: shared by the Node
 * loader (fashion-mnist.ts) and the browser's (browser/data.ts).
 */

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** The four files of the dataset, without the `.gz` they usually carry. */
export const FASHION_MNIST_FILES = [
  'train-images-idx3-ubyte',
  'train-labels-idx1-ubyte',
  't10k-images-idx3-ubyte',
  't10k-labels-idx1-ubyte',
] as const;

/**
 * A split from its parsed images and labels files (named in messages), in shared memory, once
 * checked: 28x28 images, as many labels as images, every label one of the 10 classes.
 */
export function fashionMnistSplit(
  images: IdxArray,
  labels: IdxArray,
  names: { readonly images: string; readonly labels: string },
): Split {
  const [count, height, width] = images.dims;
  if (height !== 28 || width !== 28) {
    throw new DataError(`${names.images}: images are ${height}x${width}, Fashion-MNIST's are 28x28`);
  }
  if (labels.dims[0] !== count) {
    throw new DataError(
      `${names.labels}: ${labels.dims[0]} labels for the ${count} images of ${names.images}; they must be the same split`,
    );
  }
  const split = { images: toShared(images.data), labels: toShared(labels.data), count };
  checkSplit(split, height * width, FASHION_MNIST_CLASSES.length, names.labels);
  return split;
}
