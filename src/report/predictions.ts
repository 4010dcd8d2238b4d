import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/dataset.js';
import { modelInput } from '../model/keras.js';
import { Rng } from '../rng.js';

/**
 * What a trained model says about images, as numbers: shared by the pictures Node draws
 * (report.ts, with @napi-rs/canvas) and the web page, which draws the same numbers on its own canvas.
 */

/** Images in the prediction grid, as in the tutorial's last figure. */
export const GRID_IMAGES = 100;

/** Mistakes are drawn in this red, in the pictures and on the page. */
export const MISTAKE_RED = '#d62728';

export interface GridItem {
  /** The image, uint8, `height x width x channels` (NHWC), as the grid's images are. */
  readonly pixels: Uint8Array;
  /** One or two lines under the image. */
  readonly caption: readonly string[];
  /** Drawn in red (a mistake) rather than ink. */
  readonly red: boolean;
}

/**
 * The model's class for every image of a split of `height x width x channels` images: predict in
 * batches of 1000 on the calling thread.
 */
export function predictClasses(
  model: tf.LayersModel,
  split: Split,
  height: number,
  width: number,
  channels = 1,
): Int32Array {
  return tf.tidy(() => {
    const shape = channels === 1 ? [split.count, height, width] : [split.count, height, width, channels];
    const pixels = tf.tensor(split.images, shape, 'float32');
    const x = modelInput(model, split.images instanceof Uint8Array ? tf.div(pixels, 255) : pixels);
    // A large batch: tfjs-layers slices the input per batch, and each slice costs ~15 ms on wasm.
    return (model.predict(x, { batchSize: 1000 }) as tf.Tensor).argMax(1).dataSync() as Int32Array;
  });
}

/**
 * The grid of test images with their predicted classes: GRID_IMAGES random ones (chosen by `seed`),
 * each captioned with its predicted class, and, when that is wrong, in red with the true class.
 */
export function predictionGrid(options: {
  readonly predicted: ArrayLike<number>;
  readonly test: Split;
  /** Values per image: height x width x channels. */
  readonly pixels: number;
  readonly classNames: readonly string[];
  readonly seed: number;
}): { indices: number[]; items: GridItem[] } {
  const { predicted, test, pixels, classNames } = options;
  const order = Int32Array.from({ length: test.count }, (_, i) => i);
  new Rng(options.seed).shuffle(order);
  const indices = Array.from(order.subarray(0, Math.min(GRID_IMAGES, test.count)));
  const items = indices.map((i) => {
    const wrong = predicted[i] !== test.labels[i];
    const image =
      test.images instanceof Uint8Array
        ? test.images.subarray(i * pixels, (i + 1) * pixels)
        : Uint8Array.from(test.images.subarray(i * pixels, (i + 1) * pixels), (v) =>
            Math.round(Math.min(1, Math.max(0, v)) * 255),
          );
    return {
      pixels: image,
      red: wrong,
      caption: wrong ? [classNames[predicted[i]], `true: ${classNames[test.labels[i]]}`] : [classNames[predicted[i]]],
    };
  });
  return { indices, items };
}

/**
 * The `k` most probable classes of one image (uint8, `height x width x channels`; a grey one as the
 * dataset's: for Fashion-MNIST, a light object on black).
 */
export function topClasses(
  model: tf.LayersModel,
  pixels: Uint8Array,
  image: { readonly height: number; readonly width: number; readonly channels?: number },
  k = 3,
): { readonly classIndex: number; readonly probability: number }[] {
  const channels = image.channels ?? 1;
  const shape = channels === 1 ? [1, image.height, image.width] : [1, image.height, image.width, channels];
  const probabilities = tf.tidy(() =>
    (model.predict(modelInput(model, tf.div(tf.tensor(pixels, shape, 'float32'), 255))) as tf.Tensor).dataSync(),
  );
  return Array.from(probabilities, (probability, classIndex) => ({ classIndex, probability }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, k);
}
