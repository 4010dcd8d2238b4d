import * as tf from '@tensorflow/tfjs';
import { Activations, glorotUniform, heapView, type StepContext, sumColumns } from '../compute.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';
import type { ConvSpec, Shape } from '../spec.js';

/**
 * A 2-D convolution, stride 1, NHWC. Its kernel is stored as Keras's, `[k, k, in, out]`, then the
 * bias. tfjs-wasm has no kernel for the filter gradient and a slow one for the input gradient, so
 * the backward pass takes other routes, both on XNNPACK's fast paths:
 *
 *   forward   Z = conv2d(X, W) + b
 *   weights   dW = cols(X)^T · dZ        [k*k*in, count*h*w] x [count*h*w, out], a plain matMul whose
 *                                        result is already in Keras's layout; cols(X)^T is built
 *                                        in JavaScript (im2col, transposed)
 *   input     dX = conv2d(dZ, W')        W' = W rotated 180 degrees with in and out swapped, the
 *                                        padding mirrored: the transposed convolution, as a forward one
 */
export const conv: LayerKind<ConvSpec> = {
  outputShape(spec, input) {
    if (input.length !== 3) {
      throw new Error(
        `needs images (height x width x channels), got ${input.join('x')} features: remove the flatten before it`,
      );
    }
    const [height, width] = input;
    if (spec.padding === 'same') return [height, width, spec.filters];
    if (height < spec.kernel || width < spec.kernel) {
      throw new Error(
        `a ${spec.kernel}x${spec.kernel} kernel with valid padding needs an input of at least that size, got ${input.join('x')}`,
      );
    }
    return [height - spec.kernel + 1, width - spec.kernel + 1, spec.filters];
  },

  paramCount(spec, input) {
    return (spec.kernel * spec.kernel * input[2] + 1) * spec.filters;
  },

  initialize(layer, params, rng) {
    const { kernel, filters } = layer.spec;
    const area = kernel * kernel;
    const channels = layer.input[2];
    glorotUniform(params.subarray(0, area * channels * filters), area * channels, area * filters, () => rng.next());
  },

  kerasLayer(layer, inputShape) {
    const { filters, kernel, padding, activation } = layer.spec;
    return tf.layers.conv2d({ filters, kernelSize: kernel, padding, activation, inputShape });
  },

  toKerasWeights(layer, params) {
    const { kernel, filters } = layer.spec;
    const size = kernel * kernel * layer.input[2] * filters;
    return [
      tf.tensor4d(params.slice(0, size), [kernel, kernel, layer.input[2], filters]),
      tf.tensor1d(params.slice(size, size + filters)),
    ];
  },

  fromKerasWeights(_layer, [kernel, bias], params) {
    params.set(kernel, 0);
    params.set(bias, kernel.length);
  },

  compute(layer, rows) {
    return new ConvCompute(layer, rows);
  },
};

/** Padding before and after, in each dimension, of a stride-1 convolution (TensorFlow's rule for `same`). */
function paddingOf(spec: ConvSpec): [number, number] {
  if (spec.padding === 'valid') return [0, 0];
  const total = spec.kernel - 1;
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

class ConvCompute implements LayerCompute {
  readonly #layer: PlacedLayer<ConvSpec>;
  readonly #output: Shape;
  readonly #kernelSize: number;
  #weights: tf.Tensor4D | undefined;
  #bias: tf.Tensor | undefined;
  /** W rotated 180 degrees, in and out swapped: `[k, k, out, in]`. */
  #flipped: tf.Tensor4D | undefined;
  readonly #flippedValues: Float32Array;
  /** im2col of the input, transposed: `[k*k*in, rows*h*w]`, for the filter gradient. */
  readonly #columns: Float32Array;
  #input: tf.Tensor | undefined;
  #preActivation: tf.Tensor | undefined;

  constructor(layer: PlacedLayer<ConvSpec>, rows: number) {
    this.#layer = layer;
    this.#output = layer.output;
    const { kernel, filters } = layer.spec;
    this.#kernelSize = kernel * kernel * layer.input[2] * filters;
    this.#flippedValues = new Float32Array(layer.needsInputGradient ? this.#kernelSize : 0);
    this.#columns = new Float32Array(kernel * kernel * layer.input[2] * rows * layer.output[0] * layer.output[1]);
  }

  prepare(params: Float32Array): void {
    const { kernel, filters } = this.#layer.spec;
    const channels = this.#layer.input[2];
    const at = this.#layer.offset;
    const weights = params.subarray(at, at + this.#kernelSize);
    this.#weights = tf.tensor4d(weights, [kernel, kernel, channels, filters]);
    this.#bias = tf.tensor1d(params.subarray(at + this.#kernelSize, at + this.#kernelSize + filters));
    if (this.#layer.needsInputGradient) {
      const flipped = this.#flippedValues;
      for (let y = 0; y < kernel; y++) {
        for (let x = 0; x < kernel; x++) {
          const from = ((kernel - 1 - y) * kernel + (kernel - 1 - x)) * channels * filters;
          const to = (y * kernel + x) * filters * channels;
          for (let c = 0; c < channels; c++) {
            for (let f = 0; f < filters; f++) flipped[to + f * channels + c] = weights[from + c * filters + f];
          }
        }
      }
      this.#flipped = tf.tensor4d(flipped, [kernel, kernel, filters, channels]);
    }
  }

  release(): void {
    tf.dispose([this.#weights, this.#bias, this.#flipped].filter((t) => t !== undefined));
    this.#weights = this.#bias = this.#flipped = undefined;
  }

  #convolve(x: tf.Tensor): tf.Tensor {
    const [before, after] = paddingOf(this.#layer.spec);
    const z = tf.add(
      tf.conv2d(x as tf.Tensor4D, this.#weights as tf.Tensor4D, 1, [
        [0, 0],
        [before, after],
        [before, after],
        [0, 0],
      ]),
      this.#bias as tf.Tensor,
    );
    return z;
  }

  forward(input: Activations): Activations {
    const x = input.rows();
    const z = this.#convolve(x);
    this.#input = x;
    this.#preActivation = z;
    return Activations.ofRows(this.#layer.spec.activation === 'relu' ? tf.relu(z) : z, this.#output);
  }

  backward(gradient: Activations, context: StepContext): Activations | undefined {
    const { kernel, filters, activation } = this.#layer.spec;
    const x = this.#input as tf.Tensor;
    const count = x.shape[0];
    const [height, width, channels] = this.#layer.input;
    const [outHeight, outWidth] = this.#output;
    const upstream = gradient.rows();
    const dz = activation === 'relu' ? tf.mul(upstream, tf.step(this.#preActivation as tf.Tensor)) : upstream;
    const positions = count * outHeight * outWidth;
    const columns = this.#columns.subarray(0, kernel * kernel * channels * positions);
    im2colTransposed(
      heapView(x),
      { count, height, width, channels, kernel, outHeight, outWidth, pad: paddingOf(this.#layer.spec)[0] },
      columns,
    );
    const at = this.#layer.offset;
    const dw = tf.matMul(
      tf.tensor2d(columns, [kernel * kernel * channels, positions]),
      tf.reshape(dz, [positions, filters]),
    );
    context.grad.set(heapView(dw), at);
    sumColumns(heapView(dz), positions, filters, context.grad, at + this.#kernelSize);
    this.#input = this.#preActivation = undefined;
    if (!this.#layer.needsInputGradient) return undefined;
    const [before, after] = paddingOf(this.#layer.spec);
    const dx = tf.conv2d(dz as tf.Tensor4D, this.#flipped as tf.Tensor4D, 1, [
      [0, 0],
      [kernel - 1 - before, kernel - 1 - after],
      [kernel - 1 - before, kernel - 1 - after],
      [0, 0],
    ]);
    return Activations.ofRows(dx, this.#layer.input);
  }

  infer(input: Activations): Activations {
    const z = this.#convolve(input.rows());
    return Activations.ofRows(this.#layer.spec.activation === 'relu' ? tf.relu(z) : z, this.#output);
  }
}

interface Geometry {
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly kernel: number;
  readonly outHeight: number;
  readonly outWidth: number;
  /** Padding above and left of the input. */
  readonly pad: number;
}

/**
 * The im2col matrix of NHWC images, transposed: row `(ky * k + kx) * channels + c` holds, for every
 * output position `(n, oy, ox)` in order, the input value under kernel tap `(ky, kx)` of channel
 * `c`, or 0 in the padding.
 */
function im2colTransposed(x: Float32Array, g: Geometry, out: Float32Array): void {
  const { count, height, width, channels, kernel, outHeight, outWidth, pad } = g;
  const positions = count * outHeight * outWidth;
  for (let ky = 0; ky < kernel; ky++) {
    for (let kx = 0; kx < kernel; kx++) {
      for (let c = 0; c < channels; c++) {
        const row = ((ky * kernel + kx) * channels + c) * positions;
        let p = row;
        for (let n = 0; n < count; n++) {
          for (let oy = 0; oy < outHeight; oy++) {
            const iy = oy + ky - pad;
            if (iy < 0 || iy >= height) {
              out.fill(0, p, p + outWidth);
              p += outWidth;
              continue;
            }
            const base = (n * height + iy) * width * channels + c;
            for (let ox = 0; ox < outWidth; ox++) {
              const ix = ox + kx - pad;
              out[p++] = ix < 0 || ix >= width ? 0 : x[base + ix * channels];
            }
          }
        }
      }
    }
  }
}
