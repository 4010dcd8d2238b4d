import type * as tf from '@tensorflow/tfjs';
import { Activations } from '../compute.js';
import { checkActivation } from '../keras-shapes.js';
import { emptyTensor, heapView } from '../kernels.js';
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

  #apply(input: Activations): Activations {
    const layouts: Layouts = {};
    // Rows and columns, those it has; planes, or nothing else, through rows.
    const which = input.hasColumns() ? (input.hasRows() ? ['rows', 'columns'] : ['columns']) : ['rows'];
    for (const layout of which as (keyof Layouts)[]) {
      const from = layout === 'rows' ? input.rows() : input.columns();
      const to = emptyTensor(from.shape);
      const x = heapView(from);
      const y = heapView(to);
      for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
      layouts[layout] = to;
    }
    return Activations.of(input.count, this.#layer.output, layouts);
  }

  backward(gradients: readonly Activations[]): Activations[] | undefined {
    if (!this.#layer.needsInputGradient) return undefined;
    const results = gradients.map((gradient, j) => {
      const output = this.#outputs[j] as Activations;
      const layout = gradient.hasRows() ? 'rows' : 'columns';
      const dy = layout === 'rows' ? gradient.rows() : gradient.columns();
      const a = layout === 'rows' ? output.rows() : output.columns();
      const dx = emptyTensor(dy.shape);
      const y = heapView(a);
      const from = heapView(dy);
      const to = heapView(dx);
      for (let i = 0; i < to.length; i++) to[i] = y[i] > 0 ? from[i] : 0;
      return Activations.of(gradient.count, this.#layer.input, { [layout]: dx } as Layouts);
    });
    this.#outputs.fill(undefined);
    return results;
  }

  infer(input: Activations): Activations {
    return this.#apply(input);
  }
}
