/**
 * How the work of a step is split among workers: the samples of the global batch (shards), and the
 * parameters that the all-reduce and Adam update (slices). Both sides use these: the workers to
 * find their part, the coordinator to split evaluation.
 */

/** A half-open range `[start, end)` of samples or parameters. */
export interface Span {
  start: number;
  end: number;
}

/**
 * The part of a batch of `count` samples from `start` that shard `index` of `shards` holds:
 * contiguous, sizes differing by at most one, possibly empty when the batch has fewer samples than
 * there are shards. Written into `into`, so that the step loop allocates nothing.
 */
export function shardOf(
  start: number,
  count: number,
  index: number,
  shards: number,
  into: Span = { start: 0, end: 0 },
): Span {
  into.start = start + Math.floor((index * count) / shards);
  into.end = start + Math.floor(((index + 1) * count) / shards);
  return into;
}

/** The slice of a `paramCount`-long parameter vector that slice `index` of `slices` covers. */
export function paramSliceOf(paramCount: number, index: number, slices: number): { lo: number; hi: number } {
  // Multiples of 16 floats (64 bytes) keep two workers from writing the same cache line.
  const chunk = Math.ceil(paramCount / slices / 16) * 16;
  return { lo: Math.min(paramCount, index * chunk), hi: Math.min(paramCount, (index + 1) * chunk) };
}
