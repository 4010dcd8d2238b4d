import * as tf from '@tensorflow/tfjs';
// Registered so that tf.ready() picks wasm over tfjs's slow plain-JS backend when the host program
// has not chosen a backend of its own.
import '@tensorflow/tfjs-backend-wasm';
import { paramLayout } from '../model/layout.js';

export interface ModelShape {
  readonly height: number;
  readonly width: number;
  /** Layer sizes, inputs first, classes last. */
  readonly sizes: readonly number[];
}

/**
 * The trained parameters as the tutorial's Keras model: Flatten -> Dense(relu)... -> Dense(softmax).
 * Kernels go back to Keras's [inputs, outputs] layout. Compiled with the training's loss, so
 * `model.evaluate` works as it does in the tutorial.
 */
export async function toLayersModel(params: Float32Array, shape: ModelShape): Promise<tf.LayersModel> {
  await tf.ready();
  const { layers } = paramLayout(shape.sizes);
  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [shape.height, shape.width] }));
  layers.forEach((layer, i) => {
    const last = i === layers.length - 1;
    model.add(tf.layers.dense({ units: layer.outputs, activation: last ? 'softmax' : 'relu' }));
  });
  const weights = layers.flatMap((layer) => {
    const kernel = new Float32Array(layer.inputs * layer.outputs);
    for (let o = 0; o < layer.outputs; o++) {
      for (let i = 0; i < layer.inputs; i++)
        kernel[i * layer.outputs + o] = params[layer.weightOffset + o * layer.inputs + i];
    }
    const bias = params.slice(layer.biasOffset, layer.biasOffset + layer.outputs);
    return [tf.tensor2d(kernel, [layer.inputs, layer.outputs]), tf.tensor1d(bias)];
  });
  model.setWeights(weights);
  tf.dispose(weights);
  model.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}
