/**
 * Small model directories for the tests of loadModel, in the format npm run train writes, with
 * fixed layer names so that messages are known in advance.
 */
import * as tf from '@tensorflow/tfjs';
import { saveModel } from '../dist/src/model/files.js';

export const TINY_WEIGHT_BYTES = 25480;

/** The tutorial's model, small: Flatten -> Dense relu (8 units) -> Dense softmax; 784*8 + 8 + 8*10 + 10 = 6370 floats. */
export function tinyModel(): tf.Sequential {
  return withRandomWeights(
    tf.sequential({
      layers: [
        tf.layers.flatten({ name: 'flatten', inputShape: [28, 28] }),
        tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu' }),
        tf.layers.dense({ name: 'output', units: 10, activation: 'softmax' }),
      ],
    }),
  );
}

/**
 * A tiny convolutional model, as npm run train --model cnn writes them: conv (2 filters, 3x3, same)
 * -> pool 2x2 -> dropout -> flatten -> dense softmax. Its weights are 3*3*1*2 + 2 + 14*14*2*10 + 10
 * = 3950 floats.
 */
export function tinyCnn(): tf.Sequential {
  return withRandomWeights(
    tf.sequential({
      layers: [
        tf.layers.conv2d({
          name: 'conv',
          filters: 2,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          inputShape: [28, 28, 1],
        }),
        tf.layers.maxPooling2d({ name: 'pool', poolSize: 2, strides: 2 }),
        tf.layers.dropout({ name: 'drop', rate: 0.25 }),
        tf.layers.flatten({ name: 'flatten' }),
        tf.layers.dense({ name: 'output', units: 10, activation: 'softmax' }),
      ],
    }),
  );
}

/** The model with weights drawn at random, not its initial ones (zero biases): a model that loads with the wrong weights must show it. */
export function withRandomWeights<M extends tf.LayersModel>(model: M): M {
  const weights = model.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 1, 'float32', i + 1));
  model.setWeights(weights);
  tf.dispose(weights);
  return model;
}

/** Saves a tiny model (or `make()`'s) into `dir` and returns the model, for comparisons. */
export async function saveTinyModel(dir: string, make: () => tf.Sequential = tinyModel): Promise<tf.Sequential> {
  await tf.ready();
  const model = make();
  await saveModel(model, dir);
  return model;
}
