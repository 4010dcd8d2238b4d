import * as tf from '@tensorflow/tfjs';
import { Activations } from '../compute.js';
import { checkActivation } from '../keras-shapes.js';
import { emptyTensor, glueKernels, offsetOf } from '../kernels.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';

/** max(0, x), on its own: after a batch normalisation of a linear conv or dense layer. */
export interface ReluSpec {
  readonly kind: 'relu';
}

/**
 * Keras's `Activation('relu')`: max(0, x), elementwise, in whichever layouts its input has (a
 * relu commutes with a transpose), which its output keeps; the backward pass passes the gradient
 * where the output is positive. A conv or dense layer applies its own relu for free: this is for
 * a relu after something else, as in `conv:32:3:same:linear,bn,relu`.
 */
export const relu: LayerKind<ReluSpec> = {
  grammar: {
    usage: 'relu',
    meaning: 'max(0, x), after a layer that has no relu of its own (bn)',
    parse(_parts, read) {
      read.atMost(0);
      return { kind: 'relu' };
    },
    format() {
      return 'relu';
    },
  },

  keras: {
    className: 'Activation',
    supported: "Activation ('relu')",
    shapes(c, input, fail) {
      return { settings: { activation: checkActivation(c, fail) }, weights: [], output: [...input] };
    },
    spec(settings, unsupported) {
      if (settings.activation !== 'relu') {
        throw unsupported(`has activation "${String(settings.activation)}"; supported: relu`);
      }
      return { kind: 'relu' };
    },
    settings() {
      return { activation: 'relu' };
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
    // Elementwise: the layouts the layer before writes pass through.
    return next;
  },

  initialize() {},

  compute(layer) {
    return new ReluCompute(layer);
  },

  torch: {
    module: () => 'nn.ReLU()',
    tensors: () => [],
    toTorch: () => [],
    fromTorch() {},
    buffers: () => [],
  },
};

type Layouts = { rows?: tf.Tensor; columns?: tf.Tensor };

class ReluCompute implements LayerCompute {
  readonly #layer: PlacedLayer<ReluSpec>;
  /** Each shard's output, kept for the backward pass. */
  readonly #outputs: (Activations | undefined)[] = [];

  constructor(layer: PlacedLayer<ReluSpec>) {
    this.#layer = layer;
  }

  prepare(): void {}

  release(): void {}

  forward(inputs: readonly Activations[]): Activations[] {
    return inputs.map((input, j) => (this.#outputs[j] = this.#apply(input)));
  }

  /** tfjs's relu (XNNPACK's, ~25x a JavaScript loop's speed here) on each of rows and columns that it has. */
  #apply(input: Activations): Activations {
    const layouts: Layouts = {};
    if (input.hasColumns()) layouts.columns = tf.relu(input.columns());
    if (input.hasRows() || !input.hasColumns()) layouts.rows = tf.relu(input.rows());
    return Activations.of(input.count, this.#layer.output, layouts);
  }

  /** The gradient where the output is positive, by kernels.wat's activation backward pass, in rows. */
  backward(gradients: readonly Activations[]): Activations[] | undefined {
    if (!this.#layer.needsInputGradient) return undefined;
    const results = gradients.map((gradient, j) => {
      const output = this.#outputs[j] as Activations;
      const count = gradient.count;
      const shape = this.#layer.input;
      const channels = shape.length === 3 ? shape[2] : gradient.features;
      const pixels = gradient.features / channels;
      const dy = gradient.rows();
      const a = output.rows();
      const dx = emptyTensor(dy.shape);
      const row = pixels * channels;
      glueKernels().activation_backward(
        offsetOf(a),
        offsetOf(dy),
        offsetOf(dx),
        0,
        count,
        pixels,
        channels,
        1,
        row,
        channels,
        1,
        row,
        channels,
        1,
        row,
        channels,
        1,
      );
      return Activations.ofRows(dx, shape);
    });
    this.#outputs.fill(undefined);
    return results;
  }

  infer(input: Activations): Activations {
    return this.#apply(input);
  }
}
