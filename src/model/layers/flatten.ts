import * as tf from '@tensorflow/tfjs';
import type { Activations } from '../compute.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';
import type { FlattenSpec } from '../spec.js';

/** Images to vectors in NHWC order, as Keras's Flatten: only the shape changes, never the data. */
export const flatten: LayerKind<FlattenSpec> = {
  outputShape(_spec, input) {
    return [input.reduce((a, b) => a * b, 1)];
  },

  paramCount() {
    return 0;
  },

  initialize() {},

  kerasLayer(_layer, inputShape) {
    return tf.layers.flatten({ inputShape });
  },

  toKerasWeights() {
    return [];
  },

  fromKerasWeights() {},

  compute(layer) {
    return new FlattenCompute(layer);
  },

  // model.py's Flatten permutes PyTorch's NCHW images to NHWC first: the same features, in order.
  torch: {
    module: () => 'Flatten()',
    tensors: () => [],
    toTorch: () => [],
    fromTorch() {},
  },
};

class FlattenCompute implements LayerCompute {
  constructor(readonly layer: PlacedLayer<FlattenSpec>) {}

  prepare(): void {}

  release(): void {}

  forward(input: Activations): Activations {
    return input.reshaped(this.layer.output);
  }

  backward(gradient: Activations): Activations | undefined {
    return this.layer.needsInputGradient ? gradient.reshaped(this.layer.input) : undefined;
  }

  infer(input: Activations): Activations {
    return input.reshaped(this.layer.output);
  }
}
