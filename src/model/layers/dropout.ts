import { mix } from '../../rng.js';
import { Activations, type StepContext } from '../compute.js';
import { emptyTensor, heapView } from '../kernels.js';
import type { LayerCompute, LayerKind, PlacedLayer } from '../layer.js';

/** Inverted dropout while training (kept values scaled by 1 / (1 - rate)); nothing when evaluating. */
export interface DropoutSpec {
  readonly kind: 'dropout';
  readonly rate: number;
}

/**
 * Inverted dropout: while training, each value is kept with probability 1 - rate and scaled by
 * 1 / (1 - rate), so that evaluation, which keeps everything, needs no scaling (Keras's Dropout).
 *
 * The mask is a hash of the run's seed, the global step, the training image and the unit, not a
 * draw from a generator: it does not depend on which worker computes the sample, so N workers give
 * the result of 1, and a resumed run draws the same masks.
 */
export const dropout: LayerKind<DropoutSpec> = {
  grammar: {
    usage: 'dropout:RATE',
    meaning: 'drops a fraction RATE of its inputs while training',
    parse(parts, read) {
      read.atMost(1);
      const rate = Number(parts[0]);
      if (parts[0] === undefined || parts[0] === '') throw read.fail('needs RATE, e.g. dropout:0.5');
      if (!(rate >= 0 && rate < 1)) throw read.fail(`RATE must be at least 0 and less than 1, got "${parts[0]}"`);
      return { kind: 'dropout', rate };
    },
    format(spec) {
      return `dropout:${spec.rate}`;
    },
  },

  keras: {
    className: 'Dropout',
    supported: 'Dropout',
    shapes(c, input, fail) {
      const rate = c.rate;
      if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) fail('rate', rate, 'a number from 0 to below 1');
      if (c.noise_shape != null) fail('noise_shape', c.noise_shape, 'null');
      return { settings: { rate }, weights: [], output: [...input] };
    },
    spec(settings) {
      return { kind: 'dropout', rate: settings.rate as number };
    },
    settings(spec) {
      return { rate: spec.rate };
    },
  },

  check() {},

  macs() {
    return 0;
  },

  collectiveLength() {
    return 0;
  },

  inputLayout() {
    // It reads whichever layouts its input has.
    return undefined;
  },

  initialize() {},

  compute(layer, rows) {
    return new DropoutCompute(layer, rows);
  },

  // model.py's Dropout draws these masks from the same hash (its `keep_mask`), over the units in
  // NHWC order, which is why it is given the input's shape here.
  torch: {
    module(layer) {
      const shape = layer.input.join(', ') + (layer.input.length === 1 ? ',' : '');
      return `Dropout(${layer.spec.rate}, layer=${layer.index}, shape=(${shape}))`;
    },
    tensors: () => [],
    toTorch: () => [],
    fromTorch() {},
    buffers: () => [],
  },
};

/** The part of the mask's hash shared by every unit of one sample. */
function sampleHash(seed: number, layer: number, step: number, sample: number): number {
  return mix(mix(mix(mix(seed ^ 0x9e3779b9) ^ layer) ^ step) ^ sample);
}

/**
 * Whether `unit` of training image `sample` is kept at global step `step`, for the dropout layer at
 * network position `layer`: a pure function, so any worker, or a resumed run, draws the same mask.
 */
export function keeps(rate: number, seed: number, layer: number, step: number, sample: number, unit: number): boolean {
  return keepsUnit(rate, sampleHash(seed, layer, step, sample), unit);
}

function keepsUnit(rate: number, hash: number, unit: number): boolean {
  return mix(hash ^ Math.imul(unit, 0x9e3779b9)) >= rate * 4294967296;
}

class DropoutCompute implements LayerCompute {
  readonly #layer: PlacedLayer<DropoutSpec>;
  readonly #rows: number;
  readonly #features: number;
  /** Each shard's mask for the step, `[rows, features]`: 0 or 1 / (1 - rate). */
  readonly #masks: Float32Array[] = [];

  constructor(layer: PlacedLayer<DropoutSpec>, rows: number) {
    this.#layer = layer;
    this.#rows = rows;
    this.#features = layer.input.reduce((a, b) => a * b, 1);
  }

  prepare(): void {}

  release(): void {}

  forward(inputs: readonly Activations[], context: StepContext): Activations[] {
    const { rate } = this.#layer.spec;
    const features = this.#features;
    const scale = 1 / (1 - rate);
    return inputs.map((input, j) => {
      const { start } = context.shards[j];
      const mask = (this.#masks[j] ??= new Float32Array(this.#rows * features));
      for (let r = 0; r < input.count; r++) {
        const sample = context.order === undefined ? start + r : context.order[start + r];
        const hash = sampleHash(context.seed, this.#layer.index, context.step, sample);
        for (let u = 0; u < features; u++) mask[r * features + u] = keepsUnit(rate, hash, u) ? scale : 0;
      }
      return this.#apply(input, mask);
    });
  }

  /** The values times the mask, in each layout they have (the mask is rows-major; columns read it transposed). */
  #apply(values: Activations, mask: Float32Array): Activations {
    const count = values.count;
    const features = this.#features;
    const rows = values.hasRows() ? emptyTensor([count, ...this.#layer.input]) : undefined;
    const columns = values.hasColumns() ? emptyTensor([features, count]) : undefined;
    if (rows !== undefined) {
      const from = heapView(values.rows());
      const to = heapView(rows);
      for (let i = 0; i < count * features; i++) to[i] = from[i] * mask[i];
    }
    if (columns !== undefined) {
      const from = heapView(values.columns());
      const to = heapView(columns);
      for (let u = 0; u < features; u++) {
        for (let r = 0; r < count; r++) to[u * count + r] = from[u * count + r] * mask[r * features + u];
      }
    }
    if (rows === undefined && columns === undefined)
      return this.#apply(Activations.ofRows(values.rows(), values.shape), mask);
    return Activations.of(count, this.#layer.output, { rows, columns });
  }

  backward(gradients: readonly Activations[]): Activations[] | undefined {
    if (!this.#layer.needsInputGradient) return undefined;
    return gradients.map((gradient, j) => this.#apply(gradient, this.#masks[j]));
  }

  infer(input: Activations): Activations {
    return input;
  }
}
