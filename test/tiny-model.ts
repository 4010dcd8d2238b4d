/**
 * A small model directory for the tests of loadModel: the format npm run train writes (Flatten ->
 * Dense relu -> Dense softmax), with 8 hidden units and fixed layer names, so that messages are
 * known in advance. Its weights are 784*8 + 8 + 8*10 + 10 = 6370 floats, 25480 bytes.
 */
import * as tf from '@tensorflow/tfjs';
import { saveModel } from '../dist/src/model/files.js';

export const TINY_WEIGHT_BYTES = 25480;

export function tinyModel(): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.flatten({ name: 'flatten', inputShape: [28, 28] }),
      tf.layers.dense({ name: 'hidden', units: 8, activation: 'relu' }),
      tf.layers.dense({ name: 'output', units: 10, activation: 'softmax' }),
    ],
  });
  // Not the initial weights (zero biases): a model that loads with the wrong weights must show it.
  const weights = model.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 1, 'float32', i + 1));
  model.setWeights(weights);
  tf.dispose(weights);
  return model;
}

/** Saves a tiny model into `dir` and returns the model, for comparisons. */
export async function saveTinyModel(dir: string): Promise<tf.Sequential> {
  await tf.ready();
  const model = tinyModel();
  await saveModel(model, dir);
  return model;
}
