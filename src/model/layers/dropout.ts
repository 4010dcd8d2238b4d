import * as tf from '@tensorflow/tfjs';
import { Activations, type StepContext } from '../compute.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';
import type { DropoutSpec } from '../spec.js';

/**
 * Inverted dropout: while training, each value is kept with probability 1 - rate and scaled by
 * 1 / (1 - rate), so that evaluation, which keeps everything, needs no scaling (Keras's Dropout).
 *
 * The mask is a hash of the run's seed, the global step, the training image and the unit, not a
 * draw from a generator: it does not depend on which worker computes the sample, so N workers give
 * the result of 1, and a resumed run draws the same masks.
 */
export const dropout: LayerKind<DropoutSpec> = {
  outputShape(_spec, input) {
    return input;
  },

  paramCount() {
    return 0;
  },

  initialize() {},

  kerasLayer(layer, inputShape) {
    return tf.layers.dropout({ rate: layer.spec.rate, inputShape });
  },

  toKerasWeights() {
    return [];
  },

  fromKerasWeights() {},

  compute(layer, rows) {
    return new DropoutCompute(layer, rows);
  },
};

/** murmur3's finaliser: a 32-bit mix in which every input bit changes about half the output bits. */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Whether `unit` of training image `sample` is kept at global step `step`, for the dropout layer at
 * network position `layer`: a pure function, so any worker, or a resumed run, draws the same mask.
 */
export function keeps(rate: number, seed: number, layer: number, step: number, sample: number, unit: number): boolean {
  let h = mix(seed ^ 0x9e3779b9);
  h = mix(h ^ layer);
  h = mix(h ^ step);
  h = mix(h ^ sample);
  return mix(h ^ Math.imul(unit, 0x9e3779b9)) >= rate * 4294967296;
}

class DropoutCompute implements LayerCompute {
  readonly #layer: PlacedLayer<DropoutSpec>;
  readonly #features: number;
  readonly #mask: Float32Array;
  #maskTensor: tf.Tensor | undefined;
  #columns = false;

  constructor(layer: PlacedLayer<DropoutSpec>, rows: number) {
    this.#layer = layer;
    this.#features = layer.input.reduce((a, b) => a * b, 1);
    this.#mask = new Float32Array(rows * this.#features);
  }

  prepare(): void {}

  release(): void {}

  forward(input: Activations, context: StepContext): Activations {
    const { rate } = this.#layer.spec;
    const count = input.count;
    const features = this.#features;
    // The mask goes in the layout the input already has: no transpose for it.
    this.#columns = input.hasColumns();
    const mask = this.#mask.subarray(0, count * features);
    const scale = 1 / (1 - rate);
    for (let r = 0; r < count; r++) {
      const sample = context.order === undefined ? context.start + r : context.order[context.start + r];
      for (let u = 0; u < features; u++) {
        const value = keeps(rate, context.seed, this.#layer.index, context.step, sample, u) ? scale : 0;
        mask[this.#columns ? u * count + r : r * features + u] = value;
      }
    }
    const shape = this.#columns ? [features, count] : [count, ...this.#layer.input];
    this.#maskTensor = tf.tensor(mask, shape);
    return this.#apply(input);
  }

  #apply(values: Activations): Activations {
    const mask = this.#maskTensor as tf.Tensor;
    return this.#columns
      ? Activations.ofColumns(tf.mul(values.columns(), mask), this.#layer.output)
      : Activations.ofRows(tf.mul(values.rows(), mask), this.#layer.output);
  }

  backward(gradient: Activations): Activations | undefined {
    if (!this.#layer.needsInputGradient) return undefined;
    return this.#apply(gradient);
  }

  infer(input: Activations): Activations {
    return input;
  }
}
