import * as tf from '@tensorflow/tfjs';
import { Activations, heapView } from '../compute.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';
import type { PoolSpec, Shape } from '../spec.js';

/**
 * Max pooling over `size x size` windows with stride `size`; a partial window at the right or
 * bottom edge is dropped, as Keras's `valid` pooling does. No parameters. tfjs-wasm's MaxPoolGrad
 * is a naive loop (~47 ms for 64 images after the first convolution, against 0.6 ms forward), so
 * the backward pass routes each gradient to the maximum of its window in JavaScript instead.
 */
export const pool: LayerKind<PoolSpec> = {
  outputShape(spec, input) {
    if (input.length !== 3) {
      throw new Error(
        `needs images (height x width x channels), got ${input.join('x')} features: remove the flatten before it`,
      );
    }
    const [height, width, channels] = input;
    if (height < spec.size || width < spec.size) {
      throw new Error(`needs an input of at least ${spec.size}x${spec.size}, got ${input.join('x')}`);
    }
    return [Math.floor(height / spec.size), Math.floor(width / spec.size), channels];
  },

  paramCount() {
    return 0;
  },

  initialize() {},

  kerasLayer(layer, inputShape) {
    const { size } = layer.spec;
    return tf.layers.maxPooling2d({ poolSize: size, strides: size, padding: 'valid', inputShape });
  },

  toKerasWeights() {
    return [];
  },

  fromKerasWeights() {},

  compute(layer, rows) {
    return new PoolCompute(layer, rows);
  },
};

class PoolCompute implements LayerCompute {
  readonly #layer: PlacedLayer<PoolSpec>;
  readonly #output: Shape;
  /** The input's gradient, `[rows, h, w, c]`. */
  readonly #gradient: Float32Array;
  #input: tf.Tensor | undefined;

  constructor(layer: PlacedLayer<PoolSpec>, rows: number) {
    this.#layer = layer;
    this.#output = layer.output;
    this.#gradient = new Float32Array(rows * layer.input.reduce((a, b) => a * b, 1));
  }

  prepare(): void {}

  release(): void {}

  forward(input: Activations): Activations {
    const x = input.rows();
    this.#input = x;
    return this.infer(input);
  }

  backward(gradient: Activations): Activations | undefined {
    const x = this.#input as tf.Tensor;
    this.#input = undefined;
    if (!this.#layer.needsInputGradient) return undefined;
    const count = x.shape[0];
    const [height, width, channels] = this.#layer.input;
    const [outHeight, outWidth] = this.#output;
    const { size } = this.#layer.spec;
    const values = heapView(x);
    const upstream = heapView(gradient.rows());
    const dx = this.#gradient.subarray(0, count * height * width * channels);
    dx.fill(0);
    let o = 0;
    for (let n = 0; n < count; n++) {
      for (let oy = 0; oy < outHeight; oy++) {
        for (let ox = 0; ox < outWidth; ox++) {
          const corner = ((n * height + oy * size) * width + ox * size) * channels;
          for (let c = 0; c < channels; c++, o++) {
            // The first maximum in row-major order wins ties, as TensorFlow's MaxPoolGrad does.
            let best = corner + c;
            let max = values[best];
            for (let dy = 0; dy < size; dy++) {
              for (let dx0 = 0; dx0 < size; dx0++) {
                const at = corner + (dy * width + dx0) * channels + c;
                if (values[at] > max) {
                  max = values[at];
                  best = at;
                }
              }
            }
            dx[best] += upstream[o];
          }
        }
      }
    }
    return Activations.ofRows(tf.tensor4d(dx, [count, height, width, channels]), this.#layer.input);
  }

  infer(input: Activations): Activations {
    const { size } = this.#layer.spec;
    return Activations.ofRows(tf.maxPool(input.rows() as tf.Tensor4D, size, size, 'valid'), this.#output);
  }
}
