import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { Shape } from './spec.js';

/**
 * The activations (or their gradients) of a batch of `count` samples between two layers, in one or
 * both of two layouts: `rows`, `[count, ...shape]` (NHWC for images), which convolutions and
 * pooling work in; and `columns`, `[features, count]`, in which every matMul of a dense layer has
 * plain operands (transposed matMuls run ~10x slower on tfjs-wasm). A layer asks for the layout it
 * needs; the other is made from it once, by a transpose, and kept.
 */
export class Activations {
  #rows: tf.Tensor | undefined;
  #columns: tf.Tensor | undefined;

  private constructor(
    readonly count: number,
    readonly shape: Shape,
    rows: tf.Tensor | undefined,
    columns: tf.Tensor | undefined,
  ) {
    this.#rows = rows;
    this.#columns = columns;
  }

  static ofRows(rows: tf.Tensor, shape: Shape, columns?: tf.Tensor): Activations {
    return new Activations(rows.shape[0], shape, rows, columns);
  }

  static ofColumns(columns: tf.Tensor, shape: Shape): Activations {
    return new Activations(columns.shape[1] as number, shape, undefined, columns);
  }

  get features(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  hasColumns(): boolean {
    return this.#columns !== undefined;
  }

  rows(): tf.Tensor {
    this.#rows ??= tf.reshape(tf.transpose(this.#columns as tf.Tensor), [this.count, ...this.shape]);
    return this.#rows;
  }

  columns(): tf.Tensor {
    this.#columns ??= tf.transpose(tf.reshape(this.#rows as tf.Tensor, [this.count, this.features]));
    return this.#columns;
  }

  /** The same values seen as another per-sample shape (a flatten or its inverse): no copy. */
  reshaped(shape: Shape): Activations {
    const rows = this.#rows === undefined ? undefined : tf.reshape(this.#rows, [this.count, ...shape]);
    return new Activations(this.count, shape, rows, this.#columns);
  }
}

/** What a layer's passes need to know about the shard and the step besides its activations. */
export interface StepContext {
  /** The shard's gradient slot, laid out as the flat parameter vector. */
  grad: Float32Array;
  /** The run's seed and the 0-based global step: with the sample, they fix every dropout mask. */
  seed: number;
  step: number;
  /** The shard's samples: training-image indices `order[start ... start + count)`. */
  order: Int32Array | undefined;
  start: number;
}

/**
 * A view of a tensor's data where it lives in the wasm heap. `dataSync()` would copy it into a
 * fresh array on every call; the view costs nothing, and is read before the tensor is disposed.
 */
export function heapView(tensor: tf.Tensor): Float32Array {
  return (tf.backend() as BackendWasm).typedArrayFromHeap(tensor) as Float32Array;
}

/** Writes the sums of the rows of a `[units, count]` matrix into `out[offset...]` (float64 sums). */
export function sumRows(values: Float32Array, units: number, count: number, out: Float32Array, offset: number): void {
  for (let u = 0; u < units; u++) {
    let sum = 0;
    for (let r = u * count; r < (u + 1) * count; r++) sum += values[r];
    out[offset + u] = sum;
  }
}

/** Float64 accumulators for `sumColumns`, grown as needed rather than allocated per call. */
let columnSums = new Float64Array(0);

/** Writes the sums of the columns of a `[count, units]` matrix into `out[offset...]` (float64 sums). */
export function sumColumns(
  values: Float32Array,
  count: number,
  units: number,
  out: Float32Array,
  offset: number,
): void {
  if (columnSums.length < units) columnSums = new Float64Array(units);
  const sums = columnSums;
  sums.fill(0, 0, units);
  for (let r = 0; r < count; r++) {
    const at = r * units;
    for (let u = 0; u < units; u++) sums[u] += values[at + u];
  }
  for (let u = 0; u < units; u++) out[offset + u] = sums[u];
}

/** Glorot-uniform: uniform in +-sqrt(6 / (fanIn + fanOut)), Keras's default for kernels. */
export function glorotUniform(values: Float32Array, fanIn: number, fanOut: number, next: () => number): void {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  for (let i = 0; i < values.length; i++) values[i] = (2 * next() - 1) * limit;
}
