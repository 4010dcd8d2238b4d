/**
 * The all-reduce of the gradients. Every shard's gradient (of its summed loss) goes into its own
 * slot of one shared buffer; after the step's first barrier, the workers reduce slices of the
 * parameters across all slots (see `paramSliceOf`) and hand the sums straight to Adam, in the same
 * pass. Together the slices are a full reduce-scatter, and because the updated parameters are
 * written back into the one shared vector that every worker reads, the all-gather costs nothing.
 *
 * This file is the definition; training runs the same sums, in the same order, fused with Adam in
 * WebAssembly SIMD (adam.wat), which the tests check bit for bit against `adamUpdate` and this.
 */
export interface GradientSlots {
  /** `slotCount` gradient slots of `slotLength` floats each, one per worker rank. */
  readonly slots: Float64Array;
  readonly slotLength: number;
  readonly slotCount: number;
  /** 1 / (samples in the global batch): turns the summed loss's gradient into the mean's. */
  scale: number;
}

/**
 * The reduced gradient of parameter `i`: the slots summed in rank order, then scaled. Shards are
 * contiguous and split the batch in order, so this is the global batch's gradient up to float
 * rounding, and the fixed order makes it the same bits every run. Small enough for V8 to inline
 * into the optimizer's loop, so the reduction needs no pass of its own.
 */
export function reducedGradient(source: GradientSlots, i: number): number {
  const { slots, slotLength, slotCount } = source;
  let sum = slots[i];
  for (let k = 1; k < slotCount; k++) sum += slots[k * slotLength + i];
  return sum * source.scale;
}
