/**
 * The all-reduce of the gradients. Every worker writes the gradient of its shard's summed loss into
 * its own slot of one shared buffer; after the step's first barrier, each worker reduces its own
 * slice of the parameters across all slots (see `paramSliceOf`). Together the slices are a full
 * reduce-scatter, and because the updated parameters are written back into the same shared vector
 * every worker reads, the all-gather costs nothing.
 */
export interface ReduceSliceOptions {
  /** `slotCount` gradient slots of `slotLength` floats each, one per worker rank. */
  readonly slots: Float32Array;
  readonly slotLength: number;
  readonly slotCount: number;
  /** The slice of the parameter vector to reduce, `[lo, hi)`. */
  readonly lo: number;
  readonly hi: number;
  /** 1 / (samples in the global batch): turns the summed loss's gradient into the mean's. */
  readonly scale: number;
  /** Receives the reduced gradient of parameter i at `out[i - lo]`. */
  readonly out: Float64Array;
}

/**
 * Sums the slots over `[lo, hi)` in rank order, then scales. Shards are contiguous and split the
 * batch in order, so the sum is the global batch's gradient up to float rounding, and the fixed
 * order makes it the same bits every run.
 */
export function reduceSlice(options: ReduceSliceOptions): void {
  const { slots, slotLength, slotCount, lo, hi, scale, out } = options;
  const length = hi - lo;
  for (let j = 0; j < length; j++) out[j] = slots[lo + j];
  for (let k = 1; k < slotCount; k++) {
    const base = k * slotLength + lo;
    for (let j = 0; j < length; j++) out[j] += slots[base + j];
  }
  for (let j = 0; j < length; j++) out[j] *= scale;
}
