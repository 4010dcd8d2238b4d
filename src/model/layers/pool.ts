import * as tf from '@tensorflow/tfjs';
import { Activations } from '../compute.js';
import { emptyTensor, glueKernels, offsetOf } from '../kernels.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';
import type { PoolSpec, Shape } from '../spec.js';
import { winogradPlan } from '../winograd.js';

/**
 * Max pooling over `size x size` windows with stride `size`; a partial window at the right or
 * bottom edge is dropped, as Keras's `valid` pooling does. No parameters. Both passes run in
 * kernels.wat: tfjs-wasm's MaxPoolGrad is a naive loop (~30 ms for 64 images after the first
 * convolution, against ~1.4 ms there), and the forward pass writes, in the same sweep, the second
 * layout the next layer wants (channel planes for a convolution's filter gradient, columns for a
 * dense layer's).
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

  compute(layer, _rows, next) {
    return new PoolCompute(layer, next);
  },

  // Floor mode drops a partial window as Keras's valid pooling does; ties go to the first maximum
  // in both, so gradients take the same routes.
  torch: {
    module: (layer) => `nn.MaxPool2d(${layer.spec.size})`,
    tensors: () => [],
    toTorch: () => [],
    fromTorch() {},
  },
};

class PoolCompute implements LayerCompute {
  readonly #layer: PlacedLayer<PoolSpec>;
  readonly #output: Shape;
  /** The layout the next layer wants besides rows. */
  readonly #second: 'planes' | 'columns' | undefined;
  #input: tf.Tensor | undefined;
  #pooled: tf.Tensor | undefined;

  constructor(layer: PlacedLayer<PoolSpec>, next: PlacedLayer | undefined) {
    this.#layer = layer;
    this.#output = layer.output;
    // A convolution's direct filter gradient reads channel planes; Winograd's reads rows.
    const planes = next?.spec.kind === 'conv' && winogradPlan(next.spec, next.input)?.filterGradient !== true;
    this.#second = planes ? 'planes' : next?.spec.kind === 'dense' ? 'columns' : undefined;
  }

  prepare(): void {}

  release(): void {}

  #pool(input: Activations, second: 'planes' | 'columns' | undefined): Activations {
    const x = input.rows();
    const count = input.count;
    const [height, width, channels] = this.#layer.input;
    const [outHeight, outWidth] = this.#output;
    const pixels = outHeight * outWidth;
    const pooled = emptyTensor([count, outHeight, outWidth, channels]);
    const other =
      second === 'planes'
        ? emptyTensor([channels, count, outHeight, outWidth])
        : second === 'columns'
          ? emptyTensor([pixels * channels, count])
          : undefined;
    const [sB, sP, sC] =
      second === 'planes'
        ? [pixels, 1, count * pixels]
        : second === 'columns'
          ? [1, channels * count, count]
          : [0, 0, 0];
    glueKernels().pool_forward(
      offsetOf(x),
      offsetOf(pooled),
      other === undefined ? 0 : offsetOf(other),
      count,
      height,
      width,
      channels,
      this.#layer.spec.size,
      sB,
      sP,
      sC,
    );
    this.#pooled = pooled;
    return Activations.of(count, this.#output, { rows: pooled, [second ?? 'rows']: other ?? pooled });
  }

  forward(input: Activations): Activations {
    this.#input = input.rows();
    return this.#pool(input, this.#second);
  }

  backward(gradient: Activations): Activations | undefined {
    const x = this.#input as tf.Tensor;
    const pooled = this.#pooled as tf.Tensor;
    this.#input = this.#pooled = undefined;
    if (!this.#layer.needsInputGradient) return undefined;
    const [height, width, channels] = this.#layer.input;
    const count = gradient.count;
    const { tensor: upstream, strides } = gradient.strided();
    const dx = emptyTensor([count, height, width, channels]);
    glueKernels().pool_backward(
      offsetOf(x),
      offsetOf(pooled),
      offsetOf(upstream),
      offsetOf(dx),
      count,
      height,
      width,
      channels,
      this.#layer.spec.size,
      strides.sB,
      strides.sP,
      strides.sC,
    );
    return Activations.ofRows(dx, this.#layer.input);
  }

  infer(input: Activations): Activations {
    return this.#pool(input, undefined);
  }
}
