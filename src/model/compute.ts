import * as tf from '@tensorflow/tfjs';
import type { Strides } from './kernels-reference.js';

/** The shape of one sample between two layers: `[height, width, channels]` for images, `[features]` for vectors. */
export type Shape = readonly number[];

/**
 * A layout of activations besides rows (see Activations) that a layer's passes read their input
 * in, and that the layer before it writes for free when it can.
 */
export type Layout = 'columns' | 'planes';

/**
 * The activations (or their gradients) of a batch of `count` samples between two layers, in one or
 * more of three layouts, as the layers on both sides need them:
 * - `rows`, `[count, ...shape]` (NHWC for images): what convolutions, pooling and a dense layer's
 *   forward pass read;
 * - `columns`, `[features, count]`, features in NHWC order: the transposed operand of a dense
 *   layer's weight gradient, `X^T · dZ`, which keeps every matMul's operands plain (transposed
 *   matMuls run ~10x slower on tfjs-wasm);
 * - `planes`, `[channels, count, height, width]`: what a convolution's filter gradient builds its
 *   transposed im2col from.
 * A layer that can write a second layout for free while writing the first (pooling, the input
 * gather) does so when the next layer wants it; otherwise a layout is made from another, once, by
 * a transpose, and kept.
 */
export class Activations {
  #rows: tf.Tensor | undefined;
  #columns: tf.Tensor | undefined;
  #planes: tf.Tensor | undefined;

  private constructor(
    readonly count: number,
    readonly shape: Shape,
    layouts: { rows?: tf.Tensor; columns?: tf.Tensor; planes?: tf.Tensor },
  ) {
    this.#rows = layouts.rows;
    this.#columns = layouts.columns;
    this.#planes = layouts.planes;
  }

  static of(count: number, shape: Shape, layouts: { rows?: tf.Tensor; columns?: tf.Tensor; planes?: tf.Tensor }) {
    return new Activations(count, shape, layouts);
  }

  static ofRows(rows: tf.Tensor, shape: Shape): Activations {
    return new Activations(rows.shape[0], shape, { rows });
  }

  static ofColumns(columns: tf.Tensor, shape: Shape): Activations {
    return new Activations(columns.shape[1] as number, shape, { columns });
  }

  get features(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  hasRows(): boolean {
    return this.#rows !== undefined;
  }

  hasColumns(): boolean {
    return this.#columns !== undefined;
  }

  rows(): tf.Tensor {
    if (this.#rows === undefined) {
      this.#rows =
        this.#columns !== undefined
          ? tf.reshape(tf.transpose(this.#columns), [this.count, ...this.shape])
          : tf.transpose(this.#planes as tf.Tensor, [1, 2, 3, 0]);
    }
    return this.#rows;
  }

  columns(): tf.Tensor {
    this.#columns ??= tf.transpose(tf.reshape(this.rows(), [this.count, this.features]));
    return this.#columns;
  }

  /** Images only. One channel's planes are its rows, reshaped: no copy. */
  planes(): tf.Tensor {
    const [height, width, channels] = this.shape;
    this.#planes ??=
      channels === 1
        ? tf.reshape(this.rows(), [1, this.count, height, width])
        : tf.transpose(this.rows(), [3, 0, 1, 2]);
    return this.#planes;
  }

  /**
   * One of the layouts it has, as a tensor and the strides of element (sample, pixel, channel)
   * in it (see kernels-reference.ts): rows if it has them, else columns, else planes. Vectors are
   * 1 x 1 images of `features` channels.
   */
  strided(): { tensor: tf.Tensor; strides: Strides } {
    const count = this.count;
    const channels = this.shape.length === 3 ? this.shape[2] : this.features;
    const pixels = this.features / channels;
    if (this.#rows !== undefined) return { tensor: this.#rows, strides: { sB: this.features, sP: channels, sC: 1 } };
    if (this.#columns !== undefined) {
      return { tensor: this.#columns, strides: { sB: 1, sP: channels * count, sC: count } };
    }
    return { tensor: this.planes(), strides: { sB: pixels, sP: 1, sC: count * pixels } };
  }

  /**
   * The same values seen as another per-sample shape (a flatten or its inverse): rows are
   * reshaped, columns keep their order (features are in NHWC order either way); planes do not
   * carry over. No copy.
   */
  reshaped(shape: Shape): Activations {
    const rows = this.#rows === undefined ? undefined : tf.reshape(this.#rows, [this.count, ...shape]);
    return new Activations(this.count, shape, { rows, columns: this.#columns });
  }
}

/** One shard of a step, as a layer's training passes see it. */
export interface StepShard {
  /** Its number in the step, 0 to (workers - 1): its gradient slot, and its slot in the collective. */
  readonly index: number;
  /**
   * Its samples: training-image indices `order[start ... end)` (`start ... end` without an order);
   * `start` is also the shard's position in the epoch, to which a convolution aligns its chunks.
   */
  readonly start: number;
  readonly end: number;
  /** Its gradient slot, laid out as the flat parameter vector, float64 (see OptimizerMemory). */
  readonly grad: Float64Array;
}

/** What a layer's training passes need to know about the step besides its activations. */
export interface StepContext {
  /** The thread's shards of the step that have samples, in shard order: `inputs[j]` of a pass is `shards[j]`'s. */
  shards: readonly StepShard[];
  /** The run's seed and the 0-based global step: with the sample, they fix every dropout mask. */
  seed: number;
  step: number;
  /** The epoch's order of training-image indices. */
  order: Int32Array | undefined;
  /** Sums over all the step's shards, every computing thread's (see Collective). */
  collective: Collective;
  /**
   * The layers' state vector (see PlacedLayer.stateOffset), shared by every worker. In a step, a
   * layer updates its slice only where `updatesState` is set, on one computing worker, so that an
   * update such as a moving average is made once; every worker computes the same values to update
   * it with (from the collective's sums), and none reads the state while training.
   */
  state: Float32Array;
  updatesState: boolean;
}

/**
 * Sums over every shard of a step, for a layer that needs the whole global batch rather than its
 * shard (a synchronized batch normalisation's statistics). A thread writes the slots of its
 * shards, then calls `sum`, which waits for every computing thread (a barrier) and adds the slots
 * of all the step's shards that have samples, in shard order, in float64: every thread gets the
 * same bits, whichever thread computed which shard, so N workers give what 1 does up to float64
 * rounding. Every computing thread runs each layer's passes every step, with its shards or with
 * none, so that it reaches every `sum` the others do: a layer must make the same calls whatever its
 * shards. A pass of the layers runs over all of a thread's shards of the step at once (see
 * LayerCompute), so a thread that computes several shards never waits at a barrier for itself.
 */
export interface Collective {
  /** Shard `index`'s slot (`StepShard.index`) for the next sum: write its first values. */
  slot(index: number): Float64Array;
  /**
   * Waits for every computing thread, then returns the sums of the first `length` values of the
   * slots, in the first `length` values of an array that the next call overwrites.
   */
  sum(length: number): Float64Array;
}

/** Glorot-uniform: uniform in +-sqrt(6 / (fanIn + fanOut)), Keras's default for kernels. */
export function glorotUniform(values: Float32Array, fanIn: number, fanOut: number, next: () => number): void {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  for (let i = 0; i < values.length; i++) values[i] = (2 * next() - 1) * limit;
}
