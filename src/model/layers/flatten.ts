import type { Activations } from '../compute.js';
import { elements } from '../keras-shapes.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';

/** Images to vectors, in NHWC order (as Keras's Flatten). */
export interface FlattenSpec {
  readonly kind: 'flatten';
}

/** Images to vectors in NHWC order, as Keras's Flatten: only the shape changes, never the data. */
export const flatten: LayerKind<FlattenSpec> = {
  grammar: {
    usage: 'flatten',
    meaning: 'images to vectors',
    parse(_parts, read) {
      read.atMost(0);
      return { kind: 'flatten' };
    },
    format() {
      return 'flatten';
    },
  },

  keras: {
    className: 'Flatten',
    supported: 'Flatten',
    shapes(_config, input) {
      return { settings: {}, weights: [], output: [elements(input)] };
    },
    spec() {
      return { kind: 'flatten' };
    },
    settings() {
      return {};
    },
  },

  check() {},

  macs() {
    return 0;
  },

  collectiveLength() {
    return 0;
  },

  inputLayout(_layer, next) {
    // Rows and columns keep their order through a reshape: what the next layer wants, it wants here.
    return next;
  },

  initialize() {},

  compute(layer) {
    return new FlattenCompute(layer);
  },

  // model.py's Flatten permutes PyTorch's NCHW images to NHWC first: the same features, in order.
  torch: {
    module: () => 'Flatten()',
    tensors: () => [],
    toTorch: () => [],
    fromTorch() {},
    buffers: () => [],
  },
};

class FlattenCompute implements LayerCompute {
  constructor(readonly layer: PlacedLayer<FlattenSpec>) {}

  prepare(): void {}

  release(): void {}

  forward(inputs: readonly Activations[]): Activations[] {
    return inputs.map((input) => input.reshaped(this.layer.output));
  }

  backward(gradients: readonly Activations[]): Activations[] | undefined {
    return this.layer.needsInputGradient ? gradients.map((gradient) => gradient.reshaped(this.layer.input)) : undefined;
  }

  infer(input: Activations): Activations {
    return input.reshaped(this.layer.output);
  }
}
