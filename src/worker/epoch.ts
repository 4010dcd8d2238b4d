import { AdamKernel, type OptimizerMemory } from '../coordinator/adam-kernel.js';
import { learningRateAt } from '../coordinator/schedule.js';
import {
  CTRL_STEPS_DONE, type EpochTask, type EvaluateResult, type EvaluateTask, type LayerSlice, paramLayout,
  paramSliceOf, requestStop, shardOf, STATS_CORRECT, STATS_LOSS, STATS_SAMPLES, STATS_WORDS, TIMING_GRADIENT,
  TIMING_STEPS, TIMING_UPDATE, TIMING_WAIT_GRADIENTS, TIMING_WAIT_UPDATE, TIMING_WORDS,
} from '../protocol.js';
import { acquireCore, barrier, releaseCore } from './sync.js';
import { evaluateBatch, Scratch, shardGradients } from './gradients.js';

/** Rows per forward pass when evaluating. */
const EVAL_ROWS = 1000;

/** Buffers a worker keeps between tasks, rebuilt only when the run's shapes change. */
interface EpochBuffers {
  readonly key: string;
  readonly layers: readonly LayerSlice[];
  readonly paramCount: number;
  readonly scratch: Scratch;
}
let epochBuffers: EpochBuffers | undefined;
/** The optimizer kernel, instantiated once per run (per shared memory). */
let kernel: { memory: WebAssembly.Memory; adam: AdamKernel } | undefined;

function kernelFor(optimizer: OptimizerMemory): AdamKernel {
  if (kernel === undefined || kernel.memory !== optimizer.memory) {
    kernel = { memory: optimizer.memory, adam: new AdamKernel(optimizer) };
  }
  return kernel.adam;
}
let evalBuffers: EpochBuffers | undefined;

function buffersFor(cached: EpochBuffers | undefined, sizes: readonly number[], rows: number): EpochBuffers {
  const key = `${sizes.join(',')}/${rows}`;
  if (cached?.key === key) return cached;
  const { layers, count } = paramLayout(sizes);
  return {
    key, layers, paramCount: count,
    scratch: new Scratch(rows, sizes[0], sizes[sizes.length - 1]),
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
  const { layers, scratch, paramCount: count } = epochBuffers;
  const [lo, hi] = paramSliceOf(count, rank, workers);
  const { optimizer } = shared;
  const adam = kernelFor(optimizer);
  const grad = optimizer.grads.subarray(rank * optimizer.slotLength, rank * optimizer.slotLength + count);
  const stats = shared.stats.subarray(rank * STATS_WORDS, (rank + 1) * STATS_WORDS);
  const timings = shared.timings.subarray(rank * TIMING_WORDS, (rank + 1) * TIMING_WORDS);
  const { images, labels, count: samples } = shared.train;
  try {
    for (let step = task.firstStep; step < task.endStep; step++) {
      const batchStart = step * batchSize;
      const batchCount = Math.min(batchSize, samples - batchStart);
      const [start, end] = shardOf(batchStart, batchCount, rank, workers);
      const t0 = performance.now();
      if (!task.ownCores) acquireCore(shared.control);
      const score = shardGradients(optimizer.params, layers, { images, labels, order: shared.order, start, end }, scratch, grad);
      if (!task.ownCores) releaseCore(shared.control);
      stats[STATS_LOSS] += score.lossSum;
      stats[STATS_CORRECT] += score.correct;
      stats[STATS_SAMPLES] += end - start;
      const t1 = performance.now();
      barrier(shared.control, workers, task.ownCores);
      const t2 = performance.now();
      const t = task.adamStepsBefore + (step - task.firstStep) + 1;
      const learningRate = learningRateAt(task.schedule, task.adam.learningRate, t - 1, task.totalSteps);
      if (!task.ownCores) acquireCore(shared.control);
      adam.update(lo, hi, 1 / batchCount, t, task.adam, learningRate);
      if (!task.ownCores) releaseCore(shared.control);
      const t3 = performance.now();
      barrier(shared.control, workers, task.ownCores);
      if (rank === 0) Atomics.store(shared.control, CTRL_STEPS_DONE, step + 1 - task.firstStep);
      timings[TIMING_GRADIENT] += t1 - t0;
      timings[TIMING_WAIT_GRADIENTS] += t2 - t1;
      timings[TIMING_UPDATE] += t3 - t2;
      timings[TIMING_WAIT_UPDATE] += performance.now() - t3;
      timings[TIMING_STEPS]++;
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
  const score = evaluateBatch(shared.optimizer.params, layers, { images, labels, start, end }, scratch);
  return { ...score, count: end - start };
}
