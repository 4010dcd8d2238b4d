import * as tf from '@tensorflow/tfjs';
import { Activations, glorotUniform, heapView, type StepContext, sumRows } from '../compute.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';
import type { DenseSpec, Shape } from '../spec.js';

/**
 * A fully connected layer. Its weights are stored `[outputs, inputs]` (PyTorch's Linear layout,
 * the transpose of Keras's kernel), then the bias: with activations in the columns layout
 * `[features, count]`, every matMul of its passes has plain operands:
 *
 *   forward   Z = W · X^T + b            [out, in] x [in, count]
 *   weights   dW = dZ · X                [out, count] x [count, in]
 *   input     dX^T = W^T · dZ            [in, out] x [out, count]  (W^T made once per step)
 *
 * The softmax of the output layer is not applied here: the step driver computes the softmax
 * cross-entropy and its gradient from the logits, in JavaScript.
 */
export const dense: LayerKind<DenseSpec> = {
  outputShape(spec, input) {
    if (input.length !== 1) {
      throw new Error(`needs a flat input, got ${input.join('x')}: add flatten before it`);
    }
    return [spec.units];
  },

  paramCount(spec, input) {
    return (input[0] + 1) * spec.units;
  },

  initialize(layer, params, rng) {
    const inputs = layer.input[0];
    const { units } = layer.spec;
    glorotUniform(params.subarray(0, inputs * units), inputs, units, () => rng.next());
  },

  kerasLayer(layer, inputShape) {
    return tf.layers.dense({ units: layer.spec.units, activation: layer.spec.activation, inputShape });
  },

  toKerasWeights(layer, params) {
    const inputs = layer.input[0];
    const { units } = layer.spec;
    const kernel = new Float32Array(inputs * units);
    for (let o = 0; o < units; o++) {
      for (let i = 0; i < inputs; i++) kernel[i * units + o] = params[o * inputs + i];
    }
    return [tf.tensor2d(kernel, [inputs, units]), tf.tensor1d(params.slice(inputs * units, (inputs + 1) * units))];
  },

  fromKerasWeights(layer, [kernel, bias], params) {
    const inputs = layer.input[0];
    const { units } = layer.spec;
    for (let o = 0; o < units; o++) {
      for (let i = 0; i < inputs; i++) params[o * inputs + i] = kernel[i * units + o];
    }
    params.set(bias, inputs * units);
  },

  compute(layer) {
    return new DenseCompute(layer);
  },
};

class DenseCompute implements LayerCompute {
  readonly #layer: PlacedLayer<DenseSpec>;
  readonly #inputs: number;
  readonly #units: number;
  readonly #relu: boolean;
  readonly #output: Shape;
  #weights: tf.Tensor | undefined;
  #weightsT: tf.Tensor | undefined;
  /** The bias as `[units, 1]` for the columns layout, and `[units]` for rows. */
  #bias: tf.Tensor | undefined;
  #biasRow: tf.Tensor | undefined;
  /** Kept from the forward pass for the backward pass. */
  #input: Activations | undefined;
  #preActivation: tf.Tensor | undefined;

  constructor(layer: PlacedLayer<DenseSpec>) {
    this.#layer = layer;
    this.#inputs = layer.input[0];
    this.#units = layer.spec.units;
    this.#relu = layer.spec.activation === 'relu';
    this.#output = layer.output;
  }

  prepare(params: Float32Array): void {
    const at = this.#layer.offset;
    const weights = params.subarray(at, at + this.#inputs * this.#units);
    const bias = params.subarray(at + this.#inputs * this.#units, at + this.#layer.paramCount);
    this.#weights = tf.tensor2d(weights, [this.#units, this.#inputs]);
    this.#weightsT = tf.transpose(this.#weights);
    this.#bias = tf.tensor2d(bias, [this.#units, 1]);
    this.#biasRow = tf.reshape(this.#bias, [this.#units]);
  }

  release(): void {
    tf.dispose([this.#weights, this.#weightsT, this.#bias, this.#biasRow].filter((t) => t !== undefined));
    this.#weights = this.#weightsT = this.#bias = this.#biasRow = undefined;
  }

  forward(input: Activations): Activations {
    const z = tf.add(tf.matMul(this.#weights as tf.Tensor, input.columns()), this.#bias as tf.Tensor);
    this.#input = input;
    this.#preActivation = z;
    return Activations.ofColumns(this.#relu ? tf.relu(z) : z, this.#output);
  }

  backward(gradient: Activations, context: StepContext): Activations | undefined {
    const input = this.#input as Activations;
    const upstream = gradient.columns();
    const dz = this.#relu ? tf.mul(upstream, tf.step(this.#preActivation as tf.Tensor)) : upstream;
    const count = input.count;
    const at = this.#layer.offset;
    context.grad.set(heapView(tf.matMul(dz, tf.reshape(input.rows(), [count, this.#inputs]))), at);
    sumRows(heapView(dz), this.#units, count, context.grad, at + this.#inputs * this.#units);
    this.#input = this.#preActivation = undefined;
    if (!this.#layer.needsInputGradient) return undefined;
    return Activations.ofColumns(tf.matMul(this.#weightsT as tf.Tensor, dz), this.#layer.input);
  }

  infer(input: Activations): Activations {
    const x = tf.reshape(input.rows(), [input.count, this.#inputs]);
    const z = tf.add(tf.matMul(x, this.#weightsT as tf.Tensor), this.#biasRow as tf.Tensor);
    return Activations.ofRows(this.#relu ? tf.relu(z) : z, this.#output);
  }
}
