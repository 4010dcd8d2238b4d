import { adamUpdate } from '../coordinator/adam.js';
import { reduceSlice } from '../coordinator/all-reduce.js';
import { learningRateAt } from '../coordinator/schedule.js';
import {
  CTRL_STEPS_DONE, type EpochTask, type EvaluateResult, type EvaluateTask, type LayerSlice, paramLayout,
  paramSliceOf, requestStop, shardOf, STATS_CORRECT, STATS_LOSS, STATS_SAMPLES, STATS_WORDS,
} from '../protocol.js';
import { barrier } from './barrier.js';
import { evaluateBatch, Scratch, shardGradients } from './gradients.js';

/** Rows per forward pass when evaluating. */
const EVAL_ROWS = 1000;

/** Buffers a worker keeps between tasks, rebuilt only when the run's shapes change. */
interface EpochBuffers {
  readonly key: string;
  readonly layers: readonly LayerSlice[];
  readonly paramCount: number;
  readonly scratch: Scratch;
  /** The reduced gradient of this worker's parameter slice (float64: the sum is exact to more digits). */
  readonly reduced: Float64Array;
}
let epochBuffers: EpochBuffers | undefined;
let evalBuffers: EpochBuffers | undefined;

function buffersFor(cached: EpochBuffers | undefined, sizes: readonly number[], rows: number): EpochBuffers {
  const key = `${sizes.join(',')}/${rows}`;
  if (cached?.key === key) return cached;
  const { layers, count } = paramLayout(sizes);
  return {
    key, layers, paramCount: count,
    scratch: new Scratch(rows, sizes[0], sizes[sizes.length - 1]),
    reduced: new Float64Array(count),
  };
}

/**
 * One worker's part of an epoch. Per step, in lockstep with the other workers:
 * 1. compute the gradient of its shard of the global batch into its own slot;
 * 2. barrier: all slots are written;
 * 3. all-reduce and Adam on its own slice of the parameters (a sharded optimizer: every worker
 *    updates a different slice of the same shared vector, so there is nothing to broadcast);
 * 4. barrier: all parameters are updated, the next step may read them.
 */
export function runEpoch(task: EpochTask): void {
  const { shared, rank, workers, batchSize } = task;
  epochBuffers = buffersFor(epochBuffers, shared.sizes, Math.ceil(batchSize / workers));
  const { layers, scratch, reduced, paramCount: count } = epochBuffers;
  const [lo, hi] = paramSliceOf(count, rank, workers);
  const grad = shared.grads.subarray(rank * count, (rank + 1) * count);
  const stats = shared.stats.subarray(rank * STATS_WORDS, (rank + 1) * STATS_WORDS);
  const { images, labels, count: samples } = shared.train;
  const adamState = { params: shared.params, m: shared.adamM, v: shared.adamV };
  try {
    for (let step = task.firstStep; step < task.endStep; step++) {
      const batchStart = step * batchSize;
      const batchCount = Math.min(batchSize, samples - batchStart);
      const [start, end] = shardOf(batchStart, batchCount, rank, workers);
      const score = shardGradients(shared.params, layers, { images, labels, order: shared.order, start, end }, scratch, grad);
      stats[STATS_LOSS] += score.lossSum;
      stats[STATS_CORRECT] += score.correct;
      stats[STATS_SAMPLES] += end - start;
      barrier(shared.control, workers);
      reduceSlice({ slots: shared.grads, slotLength: count, slotCount: workers, lo, hi, scale: 1 / batchCount, out: reduced });
      const t = task.adamStepsBefore + (step - task.firstStep) + 1;
      const learningRate = learningRateAt(task.schedule, task.adam.learningRate, t - 1, task.totalSteps);
      adamUpdate(adamState, reduced, lo, hi, t, task.adam, learningRate);
      barrier(shared.control, workers);
      if (rank === 0) Atomics.store(shared.control, CTRL_STEPS_DONE, step + 1 - task.firstStep);
    }
  } catch (error) {
    requestStop(shared.control);
    throw error;
  }
}

export function runEvaluate(task: EvaluateTask): EvaluateResult {
  const { shared, start, end } = task;
  evalBuffers = buffersFor(evalBuffers, shared.sizes, EVAL_ROWS);
  const { layers, scratch } = evalBuffers;
  const { images, labels } = shared.test;
  const score = evaluateBatch(shared.params, layers, { images, labels, start, end }, scratch);
  return { ...score, count: end - start };
}
