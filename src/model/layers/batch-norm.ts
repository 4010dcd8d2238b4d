import * as tf from '@tensorflow/tfjs';
import { Activations, type Shape, type StepContext } from '../compute.js';
import { checkBoolean, type KerasWeight } from '../keras-shapes.js';
import { emptyTensor, glueKernels, heapView, heapView64, offsetOf } from '../kernels.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';

/** Batch normalisation over the last axis (an image's channels, a vector's features), as Keras's BatchNormalization. */
export interface BatchNormSpec {
  readonly kind: 'bn';
  /** Of the moving statistics: moving = moving * momentum + batch's * (1 - momentum). */
  readonly momentum: number;
  /** Added to the variance before its square root. */
  readonly epsilon: number;
}

const MOMENTUM = 0.99;
const EPSILON = 1e-3;

/**
 * Keras's BatchNormalization, synchronized over the whole step: while training, each channel
 * (the last axis) is normalised with the mean and the biased variance of the global batch, every
 * worker's shards together, then scaled by gamma and shifted by beta (its parameters, Keras's
 * order); evaluation uses the moving mean and variance (its state, Keras's order). So N workers
 * train what one worker does with the whole batch, which per-worker statistics would not.
 *
 * The forward pass sums each channel's values and squares over the thread's shards (float64) into
 * the collective and adds every shard's (`Collective.sum`); the backward pass does the same with
 * the sums of dy and dy·x̂, from which the input gradient of the whole step's summed loss is
 *
 *   dx = gamma / sqrt(var + epsilon) · (dy - Σdy / M - x̂ · Σ(dy·x̂) / M)      M values per channel
 *
 * while dgamma = Σ(dy·x̂) and dbeta = Σdy are each shard's own, summed by the optimizer's
 * all-reduce as every layer's gradients are. The moving statistics take the batch's biased
 * variance, as tfjs-layers' BatchNormalization (`tf.moments`) and Keras 3 do; TensorFlow's Keras 2
 * and PyTorch correct it by M / (M - 1).
 *
 * Both passes are JavaScript loops over the tensors' heap memory, in the layout their input has
 * (rows, columns or planes), which their output keeps.
 */
export const batchNorm: LayerKind<BatchNormSpec> = {
  grammar: {
    usage: 'bn[:MOMENTUM[:EPSILON]]',
    meaning: `batch normalisation over the last axis, synchronized across workers (default ${MOMENTUM}, ${EPSILON})`,
    parse(parts, read) {
      read.atMost(2);
      const number = (
        value: string | undefined,
        name: string,
        fallback: number,
        valid: (n: number) => boolean,
        range: string,
      ) => {
        if (value === undefined) return fallback;
        const n = Number(value);
        if (value === '' || !valid(n)) throw read.fail(`${name} must be ${range}, got "${value}"`);
        return n;
      };
      const momentum = number(
        parts[0],
        'MOMENTUM',
        MOMENTUM,
        (n) => n >= 0 && n < 1,
        'at least 0 and less than 1, e.g. bn:0.99',
      );
      const epsilon = number(
        parts[1],
        'EPSILON',
        EPSILON,
        (n) => n > 0 && n < 1,
        'above 0 and below 1, e.g. bn:0.99:0.001',
      );
      return { kind: 'bn', momentum, epsilon };
    },
    format(spec) {
      if (spec.epsilon !== EPSILON) return `bn:${spec.momentum}:${spec.epsilon}`;
      return spec.momentum === MOMENTUM ? 'bn' : `bn:${spec.momentum}`;
    },
  },

  keras: {
    className: 'BatchNormalization',
    supported: 'BatchNormalization (the last axis, with center and scale)',
    shapes(c, input, fail) {
      const rank = input.length + 1;
      const axis = Array.isArray(c.axis) && c.axis.length === 1 ? c.axis[0] : (c.axis ?? -1);
      if (axis !== -1 && axis !== rank - 1) fail('axis', c.axis, `-1 (the last axis, ${rank - 1})`);
      const momentum = c.momentum ?? MOMENTUM;
      if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1))
        fail('momentum', momentum, 'a number from 0 to 1');
      const epsilon = c.epsilon ?? EPSILON;
      if (typeof epsilon !== 'number' || !(epsilon > 0)) fail('epsilon', epsilon, 'a number above 0');
      const center = checkBoolean(c.center ?? true, 'center', fail);
      const scale = checkBoolean(c.scale ?? true, 'scale', fail);
      for (const key of ['beta_regularizer', 'gamma_regularizer', 'beta_constraint', 'gamma_constraint']) {
        // They act only in training, which a model the trainer writes never needs.
        if (c[key] != null) fail(key, c[key], 'null');
      }
      const channels = input[input.length - 1];
      const weights: KerasWeight[] = [];
      if (scale) weights.push({ name: 'gamma', shape: [channels] });
      if (center) weights.push({ name: 'beta', shape: [channels] });
      weights.push({ name: 'moving_mean', shape: [channels], state: true });
      weights.push({ name: 'moving_variance', shape: [channels], state: true });
      return { settings: { axis: -1, momentum, epsilon, center, scale }, weights, output: [...input] };
    },
    spec(settings, unsupported) {
      if (settings.center !== true) throw unsupported('has center false (no beta)');
      if (settings.scale !== true) throw unsupported('has scale false (no gamma)');
      const momentum = settings.momentum as number;
      if (momentum === 1) throw unsupported('has momentum 1 (moving statistics that never move)');
      const epsilon = settings.epsilon as number;
      if (epsilon >= 1) throw unsupported(`has epsilon ${epsilon}; supported: below 1`);
      return { kind: 'bn', momentum, epsilon };
    },
    settings(spec) {
      return { axis: -1, momentum: spec.momentum, epsilon: spec.epsilon, center: true, scale: true };
    },
  },

  check() {},

  macs() {
    // Memory traffic, as pooling: no multiply-adds counted.
    return 0;
  },

  collectiveLength(layer) {
    // Two values per channel, Σx and Σx² forward (and the shard's count), Σdy and Σ(dy·x̂) backward.
    return 2 * channelsOf(layer) + 1;
  },

  inputLayout(_layer, next) {
    // It writes its output in its input's layout: what the next layer wants, it wants here.
    return next;
  },

  initialize(layer, params, state) {
    const channels = channelsOf(layer);
    params.fill(1, 0, channels); // gamma
    params.fill(0, channels, 2 * channels); // beta
    state.fill(0, 0, channels); // moving_mean
    state.fill(1, channels, 2 * channels); // moving_variance
  },

  compute(layer) {
    return new BatchNormCompute(layer);
  },

  // model.py's BatchNorm has Keras's semantics (biased variance, Keras's momentum), and sums its
  // statistics over the ranks under DistributedDataParallel, as the workers do here.
  torch: {
    module(layer) {
      return `BatchNorm(${channelsOf(layer)}, momentum=${layer.spec.momentum}, eps=${layer.spec.epsilon})`;
    },
    tensors(layer) {
      const channels = channelsOf(layer);
      return [
        { name: 'weight', shape: [channels] },
        { name: 'bias', shape: [channels] },
      ];
    },
    toTorch(layer, values) {
      const channels = channelsOf(layer);
      return [values.slice(0, channels), values.slice(channels, 2 * channels)];
    },
    fromTorch(layer, [weight, bias], values) {
      values.set(weight, 0);
      values.set(bias, channelsOf(layer));
    },
    buffers: () => ['running_mean', 'running_var'],
  },
};

function channelsOf(layer: PlacedLayer<BatchNormSpec>): number {
  return layer.input[layer.input.length - 1];
}

/**
 * A layout of a batch's activations as this layer walks it: `channelMinor` when a channel's
 * values are `channels` apart (rows, NHWC), else each channel's values are one run of `count *
 * pixels` values, `runStride` apart (columns, planes).
 */
interface Walk {
  readonly tensor: tf.Tensor;
  readonly layout: 'rows' | 'columns' | 'planes';
  readonly channelMinor: boolean;
  readonly runStride: number;
}

function walkOf(values: Activations, layout?: Walk['layout']): Walk {
  // Rows when it has them; otherwise a vector's columns, or an image's planes, in each of which a
  // channel's values are one run (an image's columns are not: their features are NHWC).
  const image = values.shape.length === 3;
  const chosen = layout ?? (values.hasRows() ? 'rows' : image ? 'planes' : 'columns');
  const tensor = chosen === 'rows' ? values.rows() : chosen === 'columns' ? values.columns() : values.planes();
  const run = values.count * (values.features / values.shape[values.shape.length - 1]);
  return { tensor, layout: chosen, channelMinor: chosen === 'rows', runStride: run };
}

/** Activations of `tensor`, laid out as `layout`. */
function activationsOf(count: number, shape: Shape, layout: Walk['layout'], tensor: tf.Tensor): Activations {
  return Activations.of(
    count,
    shape,
    layout === 'rows' ? { rows: tensor } : layout === 'columns' ? { columns: tensor } : { planes: tensor },
  );
}

class BatchNormCompute implements LayerCompute {
  readonly #layer: PlacedLayer<BatchNormSpec>;
  readonly #channels: number;
  /** gamma and beta, as prepared; for evaluation, the scale and shift that the moving statistics make of them. */
  readonly #gamma: Float64Array;
  readonly #beta: Float64Array;
  readonly #inferScale: Float64Array;
  readonly #inferShift: Float64Array;
  /** The step's batch statistics: mean and 1 / sqrt(variance + epsilon), per channel. */
  readonly #mean: Float64Array;
  readonly #inverse: Float64Array;
  /** Per channel, gamma / sqrt(var + eps), and beta - mean · that: y = x · scale + shift. */
  readonly #scale: Float64Array;
  readonly #shift: Float64Array;
  /** Per-shard sums of dy and dy·x̂, channel by channel, for the shard's gradient and the collective. */
  readonly #sums: Float64Array;
  /** Each shard's input, kept for the backward pass, and the layout its passes walk. */
  readonly #inputs: (Walk | undefined)[] = [];
  /** Values per channel: in one sample, and in the step's global batch (M). */
  readonly #pixels: number;
  #total = 0;
  /** The input gradient's coefficients per channel (see #inputGradient). */
  readonly #b: Float64Array;
  readonly #k: Float64Array;

  constructor(layer: PlacedLayer<BatchNormSpec>) {
    this.#layer = layer;
    const channels = (this.#channels = channelsOf(layer));
    this.#gamma = new Float64Array(channels);
    this.#beta = new Float64Array(channels);
    this.#inferScale = new Float64Array(channels);
    this.#inferShift = new Float64Array(channels);
    this.#mean = new Float64Array(channels);
    this.#inverse = new Float64Array(channels);
    this.#scale = new Float64Array(channels);
    this.#shift = new Float64Array(channels);
    this.#sums = new Float64Array(2 * channels);
    this.#b = new Float64Array(channels);
    this.#k = new Float64Array(channels);
    this.#pixels = layer.input.reduce((a, b) => a * b, 1) / channels;
  }

  prepare(params: Float32Array, state: Float32Array): void {
    const channels = this.#channels;
    const at = this.#layer.offset;
    const stateAt = this.#layer.stateOffset;
    const { epsilon } = this.#layer.spec;
    for (let c = 0; c < channels; c++) {
      this.#gamma[c] = params[at + c];
      this.#beta[c] = params[at + channels + c];
      const scale = this.#gamma[c] / Math.sqrt(state[stateAt + channels + c] + epsilon);
      this.#inferScale[c] = scale;
      this.#inferShift[c] = this.#beta[c] - state[stateAt + c] * scale;
    }
  }

  release(): void {}

  forward(inputs: readonly Activations[], context: StepContext): Activations[] {
    const channels = this.#channels;
    const { collective, shards } = context;
    inputs.forEach((input, j) => {
      const walk = walkOf(input);
      this.#inputs[j] = walk;
      const slot = collective.slot(shards[j].index);
      slot.fill(0, 0, 2 * channels);
      const positions = input.count * this.#pixels;
      this.#channelSums(walk, walk, positions, slot);
      // The shard's values per channel: their sum is the global batch's, M.
      slot[2 * channels] = positions;
    });
    // Every thread makes this sum, with shards or without.
    const sums = collective.sum(2 * channels + 1);
    const total = (this.#total = sums[2 * channels]);
    const { epsilon, momentum } = this.#layer.spec;
    for (let c = 0; c < channels; c++) {
      const mean = sums[c] / total;
      // Biased, as tf.moments; never below 0 from rounding.
      const variance = Math.max(0, sums[channels + c] / total - mean * mean);
      const inverse = 1 / Math.sqrt(variance + epsilon);
      this.#mean[c] = mean;
      this.#inverse[c] = inverse;
      this.#scale[c] = this.#gamma[c] * inverse;
      this.#shift[c] = this.#beta[c] - mean * this.#scale[c];
      if (context.updatesState) {
        const state = context.state;
        const m = this.#layer.stateOffset + c;
        const v = m + channels;
        state[m] = state[m] * momentum + mean * (1 - momentum);
        state[v] = state[v] * momentum + variance * (1 - momentum);
      }
    }
    return inputs.map((input, j) => this.#affine(input, this.#inputs[j] as Walk, this.#scale, this.#shift));
  }

  /**
   * x · scale + shift, channel by channel, in the walk's layout: for rows, two tfjs ops on
   * XNNPACK's vectorised kernels (a JavaScript loop took ~10x longer), for a vector's columns a
   * loop.
   */
  #affine(input: Activations, walk: Walk, scale: Float64Array, shift: Float64Array): Activations {
    const channels = this.#channels;
    if (walk.channelMinor) {
      const output = tf.add(
        tf.mul(walk.tensor, tf.tensor1d(Float32Array.from(scale))),
        tf.tensor1d(Float32Array.from(shift)),
      );
      return activationsOf(input.count, this.#layer.output, walk.layout, output);
    }
    const output = emptyTensor(walk.tensor.shape);
    const x = heapView(walk.tensor);
    const y = heapView(output);
    const positions = input.count * this.#pixels;
    if (walk.channelMinor) {
      for (let q = 0; q < positions; q++) {
        const row = q * channels;
        for (let c = 0; c < channels; c++) y[row + c] = x[row + c] * scale[c] + shift[c];
      }
    } else {
      for (let c = 0; c < channels; c++) {
        const from = c * walk.runStride;
        const a = scale[c];
        const b = shift[c];
        for (let i = from; i < from + positions; i++) y[i] = x[i] * a + b;
      }
    }
    return activationsOf(input.count, this.#layer.output, walk.layout, output);
  }

  backward(gradients: readonly Activations[], context: StepContext): Activations[] | undefined {
    const channels = this.#channels;
    const { collective, shards } = context;
    const needsInput = this.#layer.needsInputGradient;
    const walks = gradients.map((gradient, j) => walkOf(gradient, (this.#inputs[j] as Walk).layout));
    gradients.forEach((gradient, j) => {
      const sums = this.#sums.fill(0);
      const input = this.#inputs[j] as Walk;
      this.#gradientSums(input, walks[j], gradient.count, sums);
      // dgamma, then dbeta: Keras's order.
      const grad = shards[j].grad;
      const at = this.#layer.offset;
      for (let c = 0; c < channels; c++) {
        grad[at + c] = sums[channels + c];
        grad[at + channels + c] = sums[c];
      }
      if (needsInput) collective.slot(shards[j].index).set(sums);
    });
    if (!needsInput) {
      this.#inputs.fill(undefined);
      return undefined;
    }
    // Every thread makes this sum, with shards or without (needsInputGradient is the network's).
    const sums = collective.sum(2 * channels);
    const total = this.#total;
    this.#inputGradientCoefficients(sums, total);
    const results = gradients.map((gradient, j) => {
      const input = this.#inputs[j] as Walk;
      const dy = walks[j];
      if (input.channelMinor) {
        const [a, b, k] = [this.#scale, this.#b, this.#k].map((values) => tf.tensor1d(Float32Array.from(values)));
        const dx = tf.add(tf.mul(dy.tensor, a), tf.add(tf.mul(input.tensor, b), k));
        return activationsOf(gradient.count, this.#layer.input, input.layout, dx);
      }
      const dx = emptyTensor(dy.tensor.shape);
      this.#inputGradient(heapView(input.tensor), heapView(dy.tensor), heapView(dx), input, gradient.count);
      return activationsOf(gradient.count, this.#layer.input, input.layout, dx);
    });
    this.#inputs.fill(undefined);
    return results;
  }

  /**
   * Adds each channel's Σu and Σ(u·v) of a shard's values into `into` ([Σu per channel, Σ(u·v)
   * per channel]): in kernels.wat for rows (a JavaScript loop there took ~10x longer), in
   * JavaScript for a vector's columns, whose runs are a channel's.
   */
  #channelSums(u: Walk, v: Walk, positions: number, into: Float64Array): void {
    const channels = this.#channels;
    if (u.channelMinor) {
      const sums = emptyTensor([4 * channels]);
      heapView64(sums).fill(0);
      glueKernels().channel_sums(offsetOf(u.tensor), offsetOf(v.tensor), offsetOf(sums), positions, channels);
      const values = heapView64(sums);
      for (let i = 0; i < 2 * channels; i++) into[i] += values[i];
      sums.dispose();
      return;
    }
    const x = heapView(u.tensor);
    const y = heapView(v.tensor);
    for (let c = 0; c < channels; c++) {
      const from = c * u.runStride;
      let sum = 0;
      let products = 0;
      for (let i = from; i < from + positions; i++) {
        sum += x[i];
        products += x[i] * y[i];
      }
      into[c] += sum;
      into[channels + c] += products;
    }
  }

  /** A shard's Σdy (first) and Σ(dy·x̂) (then) per channel: Σ(dy·x̂) = (Σ(dy·x) - mean·Σdy) · inv. */
  #gradientSums(input: Walk, dy: Walk, count: number, into: Float64Array): void {
    const channels = this.#channels;
    this.#channelSums(dy, input, count * this.#pixels, into);
    for (let c = 0; c < channels; c++) {
      into[channels + c] = (into[channels + c] - this.#mean[c] * into[c]) * this.#inverse[c];
    }
  }

  /**
   * Per channel, dx = dy · a + x · b + k: a = gamma·inv (the forward pass's scale), b =
   * -a·inv·Σ(dy·x̂)/M and k = -a·Σdy/M - mean·b, from the step's sums.
   */
  #inputGradientCoefficients(sums: Float64Array, total: number): void {
    const channels = this.#channels;
    for (let c = 0; c < channels; c++) {
      const scale = this.#scale[c];
      this.#b[c] = (-scale * this.#inverse[c] * sums[channels + c]) / total;
      this.#k[c] = (-scale * sums[c]) / total - this.#mean[c] * this.#b[c];
    }
  }

  /** dx = gamma · inv · (dy - Σdy / M - x̂ · Σ(dy·x̂) / M), for a vector's columns. */
  #inputGradient(x: Float32Array, dy: Float32Array, dx: Float32Array, walk: Walk, count: number): void {
    const channels = this.#channels;
    const positions = count * this.#pixels;
    const a = this.#scale;
    const b = this.#b;
    const k = this.#k;
    if (walk.channelMinor) {
      for (let q = 0; q < positions; q++) {
        const row = q * channels;
        for (let c = 0; c < channels; c++) dx[row + c] = dy[row + c] * a[c] + x[row + c] * b[c] + k[c];
      }
    } else {
      for (let c = 0; c < channels; c++) {
        const from = c * walk.runStride;
        const ac = a[c];
        const bc = b[c];
        const kc = k[c];
        for (let i = from; i < from + positions; i++) dx[i] = dy[i] * ac + x[i] * bc + kc;
      }
    }
  }

  infer(input: Activations): Activations {
    return this.#affine(input, walkOf(input), this.#inferScale, this.#inferShift);
  }
}
