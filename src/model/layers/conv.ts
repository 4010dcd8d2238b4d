import * as tf from '@tensorflow/tfjs';
import { Activations, glorotUniform, type Shape, type StepContext, type StepShard } from '../compute.js';
import {
  checkActivation,
  checkBoolean,
  checkPadding,
  image,
  isSquare,
  type KerasWeight,
  outputLength,
  pair,
  whole,
} from '../keras-shapes.js';
import { emptyTensor, glueKernels, heapView, heapView64, offsetOf } from '../kernels.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';
import { WinogradConv, type WinogradPlan, winogradMacs, winogradPlan } from '../winograd.js';

/** A 2-D convolution, stride 1. */
export interface ConvSpec {
  readonly kind: 'conv';
  readonly filters: number;
  /** The kernel is `kernel x kernel`. */
  readonly kernel: number;
  /** `valid`: no padding, the output shrinks by kernel - 1; `same`: zero-padded to keep the size. */
  readonly padding: 'valid' | 'same';
  readonly activation: 'relu' | 'linear';
}

const FILTERS = { min: 1, max: 1024 };
const KERNEL = { min: 1, max: 64 };

/**
 * A 2-D convolution, stride 1, NHWC. Its kernel is stored as Keras's, `[k, k, in, out]`, then the
 * bias. tfjs-wasm has no kernel for the filter gradient and a slow one (a naive loop, ~200 ms for
 * 64 images) for the input gradient, so the backward pass takes other routes, each on XNNPACK's
 * fast path:
 *
 *   forward   A = act(conv2d(X, W) + b)      tf.fused.conv2d: bias and relu cost nothing there
 *   weights   dW = cols(X)^T · dZ            a plain matMul whose result is Keras's layout; the
 *                                            transposed im2col is built from the input's channel
 *                                            planes by kernels.wat
 *        or   dW^T = dZ^T · cols(X)          for a first layer with few inputs per output (k*k*in
 *                                            <= out): the outer products of dZ's rows and
 *                                            im2col's, summed by kernels.wat (XNNPACK would pack
 *                                            one of them, at ~5 ns a float, for every chunk)
 *   input     dX = conv2d(dZ, W')            W' = W rotated 180 degrees, in and out swapped, the
 *                                            padding mirrored: the transposed convolution as a
 *                                            forward one
 *
 * A 3x3 convolution takes Winograd's algorithm instead, in the passes where it pays (winograd.ts,
 * and its rule, `winogradPlan`): about 3x fewer multiplications.
 *
 * The filter gradient is summed over chunks of a fixed number of samples, aligned to the epoch's
 * order, in float64: XNNPACK accumulates a product's inner dimension in float32, and over a whole
 * shard (50,000 positions for 64 images of 28x28) the rounding depends on where the shard starts
 * and ends, that is, on the worker count. Chunk by chunk, N workers do the arithmetic of 1 when
 * the shards' sizes are multiples of the chunk (every pass of Winograd's, and the direct forward
 * and input gradient, compute each sample alike whatever the shard). A chunk that a shard boundary
 * cuts is two float32 sums, which round differently from the whole chunk's: within float32
 * rounding of one worker's, not the same bits. Each shard's sum goes to its gradient slot in
 * float64 (see OptimizerMemory), so that the shards' sums add up to one worker's.
 *
 * Keras's Conv2D also has strides, dilation, rectangular kernels, no bias and other activations:
 * loadModel reads such models (its rule is Keras's whole one), the trainer trains none of them.
 */
export const conv: LayerKind<ConvSpec> = {
  grammar: {
    usage: 'conv:FILTERS:KERNEL[:same|valid][:relu|linear]',
    meaning: '2-D convolution, stride 1 (default valid, relu)',
    parse(parts, read) {
      read.atMost(4);
      const filters = read.integer(parts[0], 'filters', FILTERS, 'conv:32:3');
      const kernel = read.integer(parts[1], 'kernel', KERNEL, 'conv:32:3');
      // Padding and activation may come in either order: their words differ.
      const rest = parts.slice(2);
      const isPadding = (part: string) => part === 'same' || part === 'valid';
      const padding = read.choice(rest.find(isPadding), ['valid', 'same'] as const, 'valid');
      const activation = read.choice(
        rest.find((part) => !isPadding(part)),
        ['relu', 'linear'] as const,
        'relu',
      );
      if (rest.filter(isPadding).length > 1) throw read.fail('padding given twice');
      if (rest.filter((part) => !isPadding(part)).length > 1) throw read.fail('activation given twice');
      return { kind: 'conv', filters, kernel, padding, activation };
    },
    format(spec) {
      return `conv:${spec.filters}:${spec.kernel}:${spec.padding}${spec.activation === 'relu' ? '' : ':linear'}`;
    },
  },

  keras: {
    className: 'Conv2D',
    supported: 'Conv2D (square kernel, stride 1, valid or same padding, relu or linear)',
    shapes(c, input, fail) {
      const [height, width, channels] = image(input, fail);
      const filters = whole(c.filters, 'filters', fail);
      const kernel = pair(c.kernel_size, 'kernel_size', fail);
      const strides = pair(c.strides ?? 1, 'strides', fail);
      const dilation = pair(c.dilation_rate ?? 1, 'dilation_rate', fail);
      if (Math.max(...strides) > 1 && Math.max(...dilation) > 1) {
        // tfjs builds such a layer, then its conv2d refuses to run it.
        fail('dilation_rate', c.dilation_rate, '1 when strides are above 1');
      }
      const padding = checkPadding(c, fail);
      const activation = checkActivation(c, fail);
      const useBias = checkBoolean(c.use_bias ?? true, 'use_bias', fail);
      const output = [
        outputLength(height, kernel[0], padding, strides[0], dilation[0], fail),
        outputLength(width, kernel[1], padding, strides[1], dilation[1], fail),
        filters,
      ];
      const weights: KerasWeight[] = [{ name: 'kernel', shape: [kernel[0], kernel[1], channels, filters] }];
      if (useBias) weights.push({ name: 'bias', shape: [filters] });
      const settings = {
        filters,
        kernel_size: kernel,
        strides,
        padding,
        data_format: 'channels_last',
        dilation_rate: dilation,
        activation,
        use_bias: useBias,
      };
      return { settings, weights, output };
    },
    spec(settings, unsupported) {
      const kernel = settings.kernel_size as [number, number];
      if (!isSquare(kernel)) throw unsupported(`has a ${kernel.join('x')} kernel, not a square one`);
      if (!isSquare(settings.strides) || (settings.strides as number[])[0] !== 1) {
        throw unsupported('has a stride other than 1');
      }
      if (!isSquare(settings.dilation_rate) || (settings.dilation_rate as number[])[0] !== 1) {
        throw unsupported('has a dilation rate other than 1');
      }
      if (settings.use_bias !== true) throw unsupported('has no bias');
      const activation = settings.activation as string;
      if (activation !== 'relu' && activation !== 'linear') {
        throw unsupported(`has activation "${activation}"; supported: relu, linear`);
      }
      const padding = settings.padding as 'valid' | 'same';
      return { kind: 'conv', filters: settings.filters as number, kernel: kernel[0], padding, activation };
    },
    settings(spec) {
      return {
        filters: spec.filters,
        kernel_size: [spec.kernel, spec.kernel],
        strides: [1, 1],
        padding: spec.padding,
        data_format: 'channels_last',
        dilation_rate: [1, 1],
        activation: spec.activation,
        use_bias: true,
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
    if (spec.padding === 'valid' && (height < spec.kernel || width < spec.kernel)) {
      throw new Error(
        `a ${spec.kernel}x${spec.kernel} kernel with valid padding needs an input of at least that size, got ${input.join('x')}`,
      );
    }
  },

  macs({ spec, input, output }) {
    return output[0] * output[1] * spec.filters * spec.kernel * spec.kernel * input[2];
  },

  performedMacs(layer) {
    const direct = conv.macs(layer);
    const plan = winogradPlan(layer.spec, layer.input);
    if (plan === undefined) return { forward: direct, filterGradient: direct, inputGradient: direct };
    const winograd = winogradMacs(layer.spec, layer.input, layer.output, plan.tile);
    return {
      forward: plan.forward ? winograd.forward : direct,
      filterGradient: plan.filterGradient ? winograd.filterGradient : direct,
      inputGradient: plan.inputGradient ? winograd.inputGradient : direct,
    };
  },

  collectiveLength() {
    return 0;
  },

  inputLayout(layer) {
    // The direct filter gradient builds its transposed im2col from the input's channel planes;
    // Winograd's reads rows.
    return winogradPlan(layer.spec, layer.input)?.filterGradient === true ? undefined : 'planes';
  },

  initialize(layer, params, _state, rng) {
    const { kernel, filters } = layer.spec;
    const area = kernel * kernel;
    const channels = layer.input[2];
    glorotUniform(params.subarray(0, area * channels * filters), area * channels, area * filters, () => rng.next());
  },

  compute(layer) {
    return new ConvCompute(layer);
  },

  torch: {
    module(layer) {
      const { filters, kernel, activation } = layer.spec;
      const [before, after] = paddingOf(layer.spec);
      const relu = activation === 'relu' ? 'True' : 'False';
      return `Conv2d(${layer.input[2]}, ${filters}, ${kernel}, padding=(${before}, ${after}), relu=${relu})`;
    },

    tensors(layer) {
      const { filters, kernel } = layer.spec;
      return [
        { name: 'weight', shape: [filters, layer.input[2], kernel, kernel] },
        { name: 'bias', shape: [filters] },
      ];
    },

    // Keras's kernel [k, k, in, out] is PyTorch's [out, in, k, k], transposed.
    toTorch(layer, values) {
      const weight = new Float32Array(values.length - layer.spec.filters);
      eachTap(layer, (keras, torch) => (weight[torch] = values[keras]));
      return [weight, values.slice(weight.length)];
    },

    fromTorch(layer, [weight, bias], values) {
      eachTap(layer, (keras, torch) => (values[keras] = weight[torch]));
      values.set(bias, weight.length);
    },

    buffers: () => [],
  },
};

/** Calls `visit` with the index of each kernel value in Keras's layout and in PyTorch's. */
function eachTap(layer: PlacedLayer<ConvSpec>, visit: (keras: number, torch: number) => void): void {
  const { kernel, filters } = layer.spec;
  const channels = layer.input[2];
  for (let y = 0; y < kernel; y++) {
    for (let x = 0; x < kernel; x++) {
      for (let c = 0; c < channels; c++) {
        for (let f = 0; f < filters; f++) {
          visit(((y * kernel + x) * channels + c) * filters + f, ((f * channels + c) * kernel + y) * kernel + x);
        }
      }
    }
  }
}

/** The passes a convolution times for bench:conv, when given a timer. */
export type ConvPass = 'forward' | 'filter gradient' | 'input gradient';

export interface ConvComputeOptions {
  /**
   * `direct`: tfjs's convolution and plain matMuls in every pass; or which passes take Winograd's.
   * @default the rule's choice, `winogradPlan(spec, input) ?? 'direct'`
   */
  readonly algorithm?: 'direct' | WinogradPlan;
  /** Called at the end of each pass with the pass and `performance.now()` at its start. */
  readonly timer?: (pass: ConvPass, start: number) => void;
}

/** Padding before and after, in each dimension, of a stride-1 convolution (TensorFlow's rule for `same`). */
function paddingOf(spec: ConvSpec): [number, number] {
  if (spec.padding === 'valid') return [0, 0];
  const total = spec.kernel - 1;
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/**
 * Positions per chunk of the filter gradient's products: long enough for XNNPACK to run at full
 * speed, short enough to keep float32 sums short. Samples per chunk are a power of two, at most
 * 16, so that chunks align with shards whose sizes are multiples of 16 (a global batch of 128 on
 * up to 8 workers): those give the same chunks, and the same sums, on any worker count.
 */
const CHUNK_POSITIONS = 4096;
const MAX_CHUNK_SAMPLES = 16;

export class ConvCompute implements LayerCompute {
  readonly #layer: PlacedLayer<ConvSpec>;
  readonly #output: Shape;
  /** k * k * in: the inner dimension of the forward product, the rows of the filter gradient. */
  readonly #taps: number;
  /** dW^T = dZ^T · cols rather than dW = cols^T · dZ (see above). */
  readonly #transposedFilterGradient: boolean;
  readonly #chunk: number;
  readonly #padding: [number, number];
  /** The filter gradient, summed over chunks in float64, in Keras's layout. */
  readonly #sums: Float64Array;
  readonly #flippedValues: Float32Array;
  #weights: tf.Tensor4D | undefined;
  #bias: tf.Tensor1D | undefined;
  /** W rotated 180 degrees, in and out swapped: `[k, k, out, in]`. */
  #flipped: tf.Tensor4D | undefined;
  /** Kept from the forward pass for the backward pass, per shard. */
  readonly #input: (Activations | undefined)[] = [];
  readonly #activations: (tf.Tensor | undefined)[] = [];
  readonly #winograd: WinogradConv | undefined;
  readonly #plan: WinogradPlan | undefined;
  readonly #timer: ConvComputeOptions['timer'];

  constructor(layer: PlacedLayer<ConvSpec>, options: ConvComputeOptions = {}) {
    this.#layer = layer;
    this.#output = layer.output;
    const { kernel, filters } = layer.spec;
    this.#taps = kernel * kernel * layer.input[2];
    const positions = layer.output[0] * layer.output[1];
    this.#chunk = Math.min(MAX_CHUNK_SAMPLES, 2 ** Math.max(0, Math.floor(Math.log2(CHUNK_POSITIONS / positions))));
    this.#padding = paddingOf(layer.spec);
    this.#sums = new Float64Array(this.#taps * filters);
    const algorithm = options.algorithm ?? winogradPlan(layer.spec, layer.input) ?? 'direct';
    const plan =
      algorithm === 'direct'
        ? undefined
        : { ...algorithm, inputGradient: algorithm.inputGradient && layer.needsInputGradient };
    this.#plan = plan;
    this.#winograd =
      plan === undefined
        ? undefined
        : new WinogradConv({
            input: layer.input,
            output: layer.output,
            padBefore: this.#padding[0],
            tile: plan.tile,
            chunk: this.#chunk,
            forward: plan.forward,
            inputGradient: plan.inputGradient,
          });
    this.#transposedFilterGradient = !layer.needsInputGradient && this.#taps <= filters && !plan?.filterGradient;
    this.#flippedValues = new Float32Array(layer.needsInputGradient && !plan?.inputGradient ? this.#taps * filters : 0);
    this.#timer = options.timer;
  }

  prepare(params: Float32Array): void {
    const { kernel, filters } = this.#layer.spec;
    const channels = this.#layer.input[2];
    const at = this.#layer.offset;
    const size = this.#taps * filters;
    const weights = params.subarray(at, at + size);
    const bias = params.subarray(at + size, at + size + filters);
    this.#winograd?.prepare(weights, bias);
    // New tensors every step: XNNPACK keeps its packed copy of a filter under the tensor's id.
    if (!this.#plan?.forward) {
      this.#weights = tf.tensor4d(weights, [kernel, kernel, channels, filters]);
      this.#bias = tf.tensor1d(bias);
    }
    if (this.#layer.needsInputGradient && !this.#plan?.inputGradient) {
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
    this.#winograd?.release();
    tf.dispose([this.#weights, this.#bias, this.#flipped].filter((t) => t !== undefined));
    this.#weights = this.#bias = this.#flipped = undefined;
  }

  #apply(input: Activations): tf.Tensor {
    if (this.#plan?.forward) {
      return (this.#winograd as WinogradConv).forward(
        input.rows(),
        input.count,
        this.#layer.spec.activation === 'relu',
      );
    }
    return tf.fused.conv2d({
      x: input.rows() as tf.Tensor4D,
      filter: this.#weights as tf.Tensor4D,
      strides: 1,
      pad: this.#layer.spec.padding,
      bias: this.#bias,
      activation: this.#layer.spec.activation,
    });
  }

  forward(inputs: readonly Activations[]): Activations[] {
    return inputs.map((input, j) => {
      const start = this.#timer && performance.now();
      const activations = this.#apply(input);
      if (this.#timer) this.#timer('forward', start as number);
      this.#input[j] = input;
      this.#activations[j] = activations;
      return Activations.ofRows(activations, this.#output);
    });
  }

  backward(gradients: readonly Activations[], context: StepContext): Activations[] | undefined {
    const inputGradients = gradients.map((gradient, j) => this.#backward(gradient, j, context.shards[j]));
    return this.#layer.needsInputGradient ? (inputGradients as Activations[]) : undefined;
  }

  #backward(gradient: Activations, j: number, shard: StepShard): Activations | undefined {
    const start = this.#timer && performance.now();
    const input = this.#input[j] as Activations;
    const activations = this.#activations[j] as tf.Tensor;
    this.#input[j] = this.#activations[j] = undefined;
    const { kernel, filters, activation } = this.#layer.spec;
    const [height, width, channels] = this.#layer.input;
    const [outHeight, outWidth] = this.#output;
    const positions = outHeight * outWidth;
    const count = input.count;
    const kernels = glueKernels();
    const relu = activation === 'relu' ? 1 : 0;
    const { tensor: upstream, strides } = gradient.strided();
    const biasSums = emptyTensor([2 * filters]);
    heapView64(biasSums).fill(0);
    const sums = this.#sums.fill(0);
    const [padTop] = this.#padding;
    // Chunks of samples aligned to the epoch's order: the same chunks whatever the shard.
    const chunks: [number, number][] = [];
    for (let from = 0; from < count;) {
      const to = Math.min(count, (Math.floor((shard.start + from) / this.#chunk) + 1) * this.#chunk - shard.start);
      chunks.push([from, to]);
      from = to;
    }
    let dz: tf.Tensor | undefined;
    if (this.#transposedFilterGradient) {
      // dW^T = dZ^T · cols, chunk by chunk, as the outer products of dZ's rows and im2col's rows.
      const rows = input.rows();
      const most = Math.max(...chunks.map(([from, to]) => to - from)) * positions;
      // 3 floats to spare after each: outer_products may read that far past the last row.
      const part = emptyTensor([most * filters + 3]);
      const columns = emptyTensor([most * this.#taps + 3]);
      const transposed = emptyTensor([2 * filters * this.#taps]);
      heapView64(transposed).fill(0);
      for (const [from, to] of chunks) {
        const n = to - from;
        kernels.activation_backward(
          offsetOf(activations) + from * positions * filters * 4,
          offsetOf(upstream) + from * strides.sB * 4,
          offsetOf(part),
          offsetOf(biasSums),
          n,
          positions,
          filters,
          relu,
          positions * filters,
          filters,
          1,
          strides.sB,
          strides.sP,
          strides.sC,
          positions * filters,
          filters,
          1,
        );
        kernels.im2col(
          offsetOf(rows) + from * height * width * channels * 4,
          offsetOf(columns),
          n,
          height,
          width,
          channels,
          kernel,
          padTop,
          padTop,
          outHeight,
          outWidth,
        );
        kernels.outer_products(
          offsetOf(part),
          offsetOf(columns),
          offsetOf(transposed),
          1,
          n * positions,
          filters,
          this.#taps,
          0,
          0,
          0,
          0,
        );
      }
      const products = heapView64(transposed);
      for (let f = 0; f < filters; f++) {
        for (let t = 0; t < this.#taps; t++) sums[t * filters + f] = products[f * this.#taps + t];
      }
      // Freed now rather than with the step's tensors: the next shard reuses the memory.
      tf.dispose([part, columns, transposed]);
    } else {
      // dW = cols^T · dZ, chunk by chunk: dZ is written whole (NHWC), which the input gradient needs too.
      dz = emptyTensor([count * positions, filters]);
      kernels.activation_backward(
        offsetOf(activations),
        offsetOf(upstream),
        offsetOf(dz),
        offsetOf(biasSums),
        count,
        positions,
        filters,
        relu,
        positions * filters,
        filters,
        1,
        strides.sB,
        strides.sP,
        strides.sC,
        positions * filters,
        filters,
        1,
      );
      if (this.#plan?.filterGradient) {
        (this.#winograd as WinogradConv).filterGradient(input.rows(), dz, chunks, sums);
      } else {
        const planes = input.planes();
        for (const [from, to] of chunks) {
          const n = to - from;
          const columns = emptyTensor([this.#taps, n * positions]);
          kernels.im2col_transposed(
            offsetOf(planes) + from * height * width * 4,
            offsetOf(columns),
            n,
            height,
            width,
            channels,
            count * height * width,
            kernel,
            padTop,
            padTop,
            outHeight,
            outWidth,
          );
          // A copy of the chunk's rows of dZ: the operand XNNPACK packs must be a tensor of its own
          // (tf.slice would do, but on wasm it first copies the whole of dZ out of the heap).
          const part = emptyTensor([n * positions, filters]);
          heapView(part).set(heapView(dz).subarray(from * positions * filters, to * positions * filters));
          const product = tf.matMul(columns as tf.Tensor2D, part as tf.Tensor2D);
          const values = heapView(product);
          for (let i = 0; i < sums.length; i++) sums[i] += values[i];
          // Freed now rather than with the step's tensors: the next chunk, or shard, reuses the memory.
          tf.dispose([columns, part, product]);
        }
      }
    }
    const at = this.#layer.offset;
    shard.grad.set(sums, at);
    shard.grad.set(heapView64(biasSums), at + this.#taps * filters);
    if (this.#timer) this.#timer('filter gradient', start as number);
    if (!this.#layer.needsInputGradient) return undefined;
    const inputStart = this.#timer && performance.now();
    const dx = this.#plan?.inputGradient
      ? (this.#winograd as WinogradConv).inputGradient(dz as tf.Tensor, count)
      : this.#flippedConvolution(dz as tf.Tensor, count);
    if (this.#timer) this.#timer('input gradient', inputStart as number);
    return Activations.ofRows(dx, this.#layer.input);
  }

  /** dX = conv2d(dZ, W') with W' rotated and the padding mirrored (see the header). */
  #flippedConvolution(dz: tf.Tensor, count: number): tf.Tensor {
    const { kernel, filters } = this.#layer.spec;
    const [outHeight, outWidth] = this.#output;
    const [before, after] = this.#padding;
    return tf.conv2d(
      tf.reshape(dz, [count, outHeight, outWidth, filters]) as tf.Tensor4D,
      this.#flipped as tf.Tensor4D,
      1,
      [
        [0, 0],
        [kernel - 1 - before, kernel - 1 - after],
        [kernel - 1 - before, kernel - 1 - after],
        [0, 0],
      ],
    );
  }

  infer(input: Activations): Activations {
    return Activations.ofRows(this.#apply(input), this.#output);
  }
}
