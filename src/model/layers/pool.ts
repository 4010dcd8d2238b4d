import type * as tf from '@tensorflow/tfjs';
import { Activations, type Layout, type Shape } from '../compute.js';
import { checkPadding, image, isSquare, outputLength, pair } from '../keras-shapes.js';
import { emptyTensor, glueKernels, offsetOf } from '../kernels.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';

/** Max pooling over `size x size` windows with stride `size` (a partial window at the edge is dropped). */
export interface PoolSpec {
  readonly kind: 'pool';
  readonly size: number;
}

const SIZE = { min: 1, max: 64 };

/**
 * Max pooling over `size x size` windows with stride `size`; a partial window at the right or
 * bottom edge is dropped, as Keras's `valid` pooling does. No parameters. Both passes run in
 * kernels.wat: tfjs-wasm's MaxPoolGrad is a naive loop (~30 ms for 64 images after the first
 * convolution, against ~1.4 ms there), and the forward pass writes, in the same sweep, the second
 * layout the next layer wants (channel planes for a convolution's filter gradient, columns for a
 * dense layer's).
 */
export const pool: LayerKind<PoolSpec> = {
  grammar: {
    usage: 'pool[:SIZE]',
    meaning: 'max pooling SIZExSIZE, stride SIZE (default 2)',
    parse(parts, read) {
      read.atMost(1);
      return { kind: 'pool', size: parts.length === 0 ? 2 : read.integer(parts[0], 'size', SIZE, 'pool:2') };
    },
    format(spec) {
      return spec.size === 2 ? 'pool' : `pool:${spec.size}`;
    },
  },

  keras: {
    className: 'MaxPooling2D',
    supported: 'MaxPooling2D (square, stride = size, valid)',
    shapes(c, input, fail) {
      const [height, width, channels] = image(input, fail);
      const size = pair(c.pool_size ?? 2, 'pool_size', fail);
      const strides = pair(c.strides ?? size, 'strides', fail);
      const padding = checkPadding(c, fail);
      const output = [
        outputLength(height, size[0], padding, strides[0], 1, fail),
        outputLength(width, size[1], padding, strides[1], 1, fail),
        channels,
      ];
      const settings = { pool_size: size, strides, padding, data_format: 'channels_last' };
      return { settings, weights: [], output };
    },
    spec(settings, unsupported) {
      const size = settings.pool_size as [number, number];
      if (!isSquare(size)) throw unsupported(`has a ${size.join('x')} pool, not a square one`);
      const strides = settings.strides as [number, number];
      if (strides[0] !== size[0] || strides[1] !== size[1]) throw unsupported('has strides other than its pool size');
      if (settings.padding !== 'valid') throw unsupported(`has padding "${String(settings.padding)}"`);
      return { kind: 'pool', size: size[0] };
    },
    settings(spec) {
      return {
        pool_size: [spec.size, spec.size],
        strides: [spec.size, spec.size],
        padding: 'valid',
        data_format: 'channels_last',
      };
    },
  },

  check(spec, input) {
    if (input.length !== 3) {
      throw new Error(
        `needs images (height x width x channels), got ${input.join('x')} features: remove the flatten before it`,
      );
    }
    const [height, width] = input;
    if (height < spec.size || width < spec.size) {
      throw new Error(`needs an input of at least ${spec.size}x${spec.size}, got ${input.join('x')}`);
    }
  },

  macs() {
    return 0;
  },

  collectiveLength() {
    return 0;
  },

  inputLayout() {
    return undefined;
  },

  initialize() {},

  compute(layer, _rows, outputLayout) {
    return new PoolCompute(layer, outputLayout);
  },

  // Floor mode drops a partial window as Keras's valid pooling does; ties go to the first maximum
  // in both, so gradients take the same routes.
  torch: {
    module: (layer) => `nn.MaxPool2d(${layer.spec.size})`,
    tensors: () => [],
    toTorch: () => [],
    fromTorch() {},
    buffers: () => [],
  },
};

class PoolCompute implements LayerCompute {
  readonly #layer: PlacedLayer<PoolSpec>;
  readonly #output: Shape;
  /** The layout the next layer wants besides rows. */
  readonly #second: Layout | undefined;
  /** Kept from the forward pass for the backward pass, per shard: the input and the output, in rows. */
  readonly #input: (tf.Tensor | undefined)[] = [];
  readonly #pooled: (tf.Tensor | undefined)[] = [];

  constructor(layer: PlacedLayer<PoolSpec>, second: Layout | undefined) {
    this.#layer = layer;
    this.#output = layer.output;
    this.#second = second;
  }

  prepare(): void {}

  release(): void {}

  #pool(input: Activations, second: Layout | undefined): Activations {
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
    return Activations.of(count, this.#output, { rows: pooled, [second ?? 'rows']: other ?? pooled });
  }

  forward(inputs: readonly Activations[]): Activations[] {
    return inputs.map((input, j) => {
      this.#input[j] = input.rows();
      const output = this.#pool(input, this.#second);
      this.#pooled[j] = output.rows();
      return output;
    });
  }

  backward(gradients: readonly Activations[]): Activations[] | undefined {
    const inputGradients = gradients.map((gradient, j) => this.#backward(gradient, j));
    return this.#layer.needsInputGradient ? (inputGradients as Activations[]) : undefined;
  }

  #backward(gradient: Activations, j: number): Activations | undefined {
    const x = this.#input[j] as tf.Tensor;
    const pooled = this.#pooled[j] as tf.Tensor;
    this.#input[j] = this.#pooled[j] = undefined;
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
