import * as tf from '@tensorflow/tfjs';
import { Activations, type Shape, type StepContext, type StepShard } from '../compute.js';
import { checkActivation, checkBoolean, type KerasWeight, whole } from '../keras-shapes.js';
import { emptyTensor, glueKernels, heapView64, offsetOf } from '../kernels.js';
import type { Strides } from '../kernels-reference.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';

/** A fully connected layer; the last layer of a model is one with softmax, one unit per class. */
export interface DenseSpec {
  readonly kind: 'dense';
  readonly units: number;
  readonly activation: 'relu' | 'linear' | 'softmax';
}

const UNITS = { min: 1, max: 8192 };

/**
 * Samples per chunk of the weight gradient's sums, aligned to the epoch's order: a float32 sum over
 * 16 samples, the chunks added in float64. A sum over a whole shard would round differently for
 * every shard size; chunk by chunk, shards whose sizes are multiples of 16 do the arithmetic of one
 * worker (as the convolutions' chunks, layers/conv.ts).
 */
const CHUNK_SAMPLES = 16;

/**
 * A fully connected layer. Its kernel is stored as Keras's, `[inputs, units]`, then the bias. With
 * X the input in rows `[count, inputs]` and dZ the gradient at the pre-activations, every matMul
 * has plain operands, and the operand XNNPACK packs (the second) is the kernel or a narrow `dZ`,
 * never the wide input (packing costs grow with its width):
 *
 *   forward   A = act(X · W + b)         tf.fused.matMul: bias and relu cost nothing there; or, with
 *                                        the input in columns and fewer samples than units,
 *                                        A^T = act(W^T · X^T + b), which packs X^T, not W
 *   weights   dW = X^T · dZ              X^T is the input's columns layout
 *   input     dX^T = W · dZ^T            its gradient in columns layout `[inputs, count]`
 *
 * The relu's backward pass and the bias gradient run in kernels.wat, which writes dZ in both
 * layouts. The softmax of the output layer is not applied here: the step
 * driver computes the softmax cross-entropy and its gradient from the logits.
 */
export const dense: LayerKind<DenseSpec> = {
  grammar: {
    usage: 'dense:UNITS[:relu|linear|softmax]',
    meaning: 'fully connected (default relu; the last: softmax)',
    parse(parts, read, last) {
      read.atMost(2);
      return {
        kind: 'dense',
        units: read.integer(parts[0], 'units', UNITS, 'dense:128'),
        // The last layer is the output: softmax, unless it says otherwise.
        activation: read.choice(parts[1], ['relu', 'linear', 'softmax'] as const, last ? 'softmax' : 'relu'),
      };
    },
    format(spec, last) {
      const implied = last ? 'softmax' : 'relu';
      return `dense:${spec.units}${spec.activation === implied ? '' : `:${spec.activation}`}`;
    },
  },

  keras: {
    className: 'Dense',
    supported: 'Dense (relu or linear; softmax for the last)',
    shapes(c, input, fail) {
      const units = whole(c.units, 'units', fail);
      const activation = checkActivation(c, fail);
      const useBias = checkBoolean(c.use_bias ?? true, 'use_bias', fail);
      const weights: KerasWeight[] = [{ name: 'kernel', shape: [input[input.length - 1], units] }];
      if (useBias) weights.push({ name: 'bias', shape: [units] });
      return { settings: { units, activation, use_bias: useBias }, weights, output: [...input.slice(0, -1), units] };
    },
    spec(settings, unsupported) {
      if (settings.use_bias !== true) throw unsupported('has no bias');
      const activation = settings.activation as string;
      if (activation !== 'relu' && activation !== 'linear' && activation !== 'softmax') {
        throw unsupported(`has activation "${activation}"; supported: relu, linear, softmax`);
      }
      return { kind: 'dense', units: settings.units as number, activation };
    },
    settings(spec) {
      return { units: spec.units, activation: spec.activation, use_bias: true };
    },
  },

  check(_spec, input) {
    if (input.length !== 1) {
      throw new Error(`needs a flat input, got ${input.join('x')}: add flatten before it`);
    }
  },

  macs({ spec, input }) {
    return input[0] * spec.units;
  },

  collectiveLength() {
    return 0;
  },

  inputLayout() {
    // Its weight gradient reads the input transposed, X^T (see above).
    return 'columns';
  },

  initialize(layer, params, _state, rng) {
    // Drawn unit by unit, input by input: the order of the trainer's first versions, which stored
    // the kernel transposed, so that a seed keeps giving the same initial weights.
    const inputs = layer.input[0];
    const { units } = layer.spec;
    const limit = Math.sqrt(6 / (inputs + units));
    for (let o = 0; o < units; o++) {
      for (let i = 0; i < inputs; i++) params[i * units + o] = (2 * rng.next() - 1) * limit;
    }
  },

  compute(layer) {
    return new DenseCompute(layer);
  },

  // PyTorch's Linear computes x · W^T: its weight is Keras's kernel transposed, `[units, inputs]`.
  // The export's Flatten orders an image's features as Keras's does, so no other permutation.
  torch: {
    module(layer) {
      return `Linear(${layer.input[0]}, ${layer.spec.units}, relu=${layer.spec.activation === 'relu' ? 'True' : 'False'})`;
    },

    tensors(layer) {
      return [
        { name: 'weight', shape: [layer.spec.units, layer.input[0]] },
        { name: 'bias', shape: [layer.spec.units] },
      ];
    },

    toTorch(layer, values) {
      const inputs = layer.input[0];
      const { units } = layer.spec;
      const weight = new Float32Array(inputs * units);
      for (let i = 0; i < inputs; i++) for (let o = 0; o < units; o++) weight[o * inputs + i] = values[i * units + o];
      return [weight, values.slice(inputs * units)];
    },

    fromTorch(layer, [weight, bias], values) {
      const inputs = layer.input[0];
      const { units } = layer.spec;
      for (let i = 0; i < inputs; i++) for (let o = 0; o < units; o++) values[i * units + o] = weight[o * inputs + i];
      values.set(bias, inputs * units);
    },

    buffers: () => [],
  },
};

class DenseCompute implements LayerCompute {
  readonly #layer: PlacedLayer<DenseSpec>;
  readonly #inputs: number;
  readonly #units: number;
  readonly #relu: boolean;
  readonly #output: Shape;
  #kernel: tf.Tensor2D | undefined;
  /** The kernel transposed, `[units, inputs]`, for the columns-layout forward pass; made when first needed in a step. */
  #kernelT: tf.Tensor2D | undefined;
  #bias: tf.Tensor1D | undefined;
  /** Kept from the forward pass for the backward pass, per shard: the input, and the activations with their strides. */
  readonly #input: (Activations | undefined)[] = [];
  readonly #activations: ({ tensor: tf.Tensor; strides: Strides } | undefined)[] = [];

  constructor(layer: PlacedLayer<DenseSpec>) {
    this.#layer = layer;
    this.#inputs = layer.input[0];
    this.#units = layer.spec.units;
    this.#relu = layer.spec.activation === 'relu';
    this.#output = layer.output;
  }

  prepare(params: Float32Array): void {
    // New tensors every step: XNNPACK keeps its packed copy of a kernel under the tensor's id, so
    // values written into an old one in place would be silently ignored.
    const at = this.#layer.offset;
    const size = this.#inputs * this.#units;
    this.#kernel = tf.tensor2d(params.subarray(at, at + size), [this.#inputs, this.#units]);
    this.#bias = tf.tensor1d(params.subarray(at + size, at + size + this.#units));
  }

  release(): void {
    tf.dispose([this.#kernel, this.#kernelT, this.#bias].filter((t) => t !== undefined));
    this.#kernel = this.#kernelT = this.#bias = undefined;
  }

  /** The forward pass in rows, `[count, units]`: tf.fused.matMul, bias and relu included. */
  #rows(input: Activations): tf.Tensor {
    return tf.fused.matMul({
      a: tf.reshape(input.rows(), [input.count, this.#inputs]) as tf.Tensor2D,
      b: this.#kernel as tf.Tensor2D,
      bias: this.#bias,
      activation: this.#relu ? 'relu' : 'linear',
    });
  }

  /**
   * The forward pass in columns, `[units, count]`: W^T · X^T, then the bias and relu by the
   * kernels (tfjs would add a fused bias along the other axis). XNNPACK then packs X^T, `[inputs,
   * count]`, rather than the kernel, `[inputs, units]`: cheaper when count < units, as for a
   * worker's shard of 64 images through 128 units, where packing the kernel was ~15% of an MLP step.
   */
  #columns(input: Activations): tf.Tensor {
    if (this.#kernelT === undefined) {
      const transposed = emptyTensor([this.#units, this.#inputs]);
      glueKernels().transpose(offsetOf(this.#kernel as tf.Tensor), offsetOf(transposed), this.#inputs, this.#units);
      this.#kernelT = tf.keep(transposed) as tf.Tensor2D;
    }
    const z = tf.matMul(this.#kernelT, input.columns() as tf.Tensor2D);
    glueKernels().bias_rows(
      offsetOf(z),
      offsetOf(this.#bias as tf.Tensor),
      this.#units,
      input.count,
      this.#relu ? 1 : 0,
    );
    return z;
  }

  forward(inputs: readonly Activations[]): Activations[] {
    return inputs.map((input, j) => this.#forward(input, j));
  }

  #forward(input: Activations, j: number): Activations {
    const count = input.count;
    this.#input[j] = input;
    if (input.hasColumns() && count < this.#units) {
      const activations = this.#columns(input);
      this.#activations[j] = { tensor: activations, strides: { sB: 1, sP: 0, sC: count } };
      return Activations.ofColumns(activations, this.#output);
    }
    const activations = this.#rows(input);
    this.#activations[j] = { tensor: activations, strides: { sB: this.#units, sP: 0, sC: 1 } };
    return Activations.ofRows(activations, this.#output);
  }

  backward(gradients: readonly Activations[], context: StepContext): Activations[] | undefined {
    const inputGradients = gradients.map((gradient, j) => this.#backward(gradient, j, context.shards[j]));
    return this.#layer.needsInputGradient ? (inputGradients as Activations[]) : undefined;
  }

  #backward(gradient: Activations, j: number, shard: StepShard): Activations | undefined {
    const grad = shard.grad;
    const input = this.#input[j] as Activations;
    const activations = this.#activations[j] as { tensor: tf.Tensor; strides: Strides };
    this.#input[j] = this.#activations[j] = undefined;
    const count = input.count;
    const units = this.#units;
    const { tensor: upstream, strides } = gradient.strided();
    const needsInput = this.#layer.needsInputGradient;
    // 3 floats to spare: outer_products may read that far past the last row.
    const dz = emptyTensor([count * units + 3]);
    const dzT = needsInput ? emptyTensor([units, count]) : undefined;
    const biasSums = emptyTensor([2 * units]);
    heapView64(biasSums).fill(0);
    // Vectors are 1 x 1 images of `units` channels: dZ in rows with the bias sums, and in columns
    // for the input's gradient.
    const kernels = glueKernels();
    const relu = this.#relu ? 1 : 0;
    const a = activations.strides;
    const backward = (to: tf.Tensor, sums: number, zB: number, zC: number) =>
      kernels.activation_backward(
        offsetOf(activations.tensor),
        offsetOf(upstream),
        offsetOf(to),
        sums,
        count,
        1,
        units,
        relu,
        a.sB,
        0,
        a.sC,
        strides.sB,
        0,
        strides.sC,
        zB,
        0,
        zC,
      );
    backward(dz, offsetOf(biasSums), units, 1);
    if (dzT !== undefined) backward(dzT, 0, 1, count);
    const at = this.#layer.offset;
    // dW = X^T · dZ, chunk by chunk of the epoch's order, as the outer products of X's rows and
    // dZ's, each chunk's a float32 sum added into float64 (see CHUNK_SAMPLES), in one call.
    const rows = input.rows();
    const sums = emptyTensor([2 * this.#inputs * units]);
    heapView64(sums).fill(0);
    const first = Math.min(count, CHUNK_SAMPLES - (shard.start % CHUNK_SAMPLES));
    kernels.outer_products(
      offsetOf(rows),
      offsetOf(dz),
      offsetOf(sums),
      1,
      count,
      this.#inputs,
      units,
      0,
      0,
      first,
      CHUNK_SAMPLES,
    );
    grad.set(heapView64(sums), at);
    // Freed now rather than with the step's tensors: the next shard's sums reuse the memory.
    sums.dispose();
    grad.set(heapView64(biasSums), at + this.#inputs * units);
    if (dzT === undefined) return undefined;
    return Activations.ofColumns(tf.matMul(this.#kernel as tf.Tensor2D, dzT as tf.Tensor2D), this.#layer.input);
  }

  infer(input: Activations): Activations {
    return Activations.ofRows(this.#rows(input), this.#output);
  }
}
