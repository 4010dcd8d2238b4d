import * as tf from '@tensorflow/tfjs';
import { buildNetwork } from '../model/network.js';
import { AdamKernel, type OptimizerMemory } from '../optimizer/adam-kernel.js';
import type { ParamRange } from '../optimizer/adam.js';
import { learningRateAt } from '../optimizer/schedule.js';
import {
  CTRL_NEXT_SLICE,
  CTRL_NONFINITE_STEP,
  CTRL_STEPS_DONE,
  CTRL_STOP_DECISION,
  CTRL_TASKS_STARTED,
  type EvaluateResult,
  type EvaluateTask,
  STATS_CORRECT,
  STATS_LOSS,
  STATS_SAMPLES,
  STATS_WORDS,
  type StepsTask,
  type Task,
  TIMING_GRADIENT,
  TIMING_STEPS,
  TIMING_TENSORS,
  TIMING_UPDATE,
  TIMING_WAIT_GRADIENTS,
  TIMING_WAIT_UPDATE,
  TIMING_WORDS,
} from '../protocol.js';
import { paramSliceOf, shardOf } from '../sharding.js';
import { requestStop } from '../stop.js';
import type { ModelShape } from '../protocol.js';
import { SharedCollective } from './collective.js';
import { NetworkRunner, type ShardWork } from './network-step.js';
import { barrier } from './sync.js';

/**
 * Rows per forward pass when evaluating: large enough that per-op costs vanish, small enough that a
 * convolution's activations (rows x 28 x 28 x 32 floats after a `same` conv) stay tens of MB.
 */
const EVAL_ROWS = 250;

/**
 * A network's runner, kept between tasks and rebuilt only when the run's model or shard size
 * changes (tasks arrive as structured clones: the model is compared by value).
 */
interface CachedRunner {
  readonly key: string;
  readonly runner: NetworkRunner;
  readonly paramCount: number;
}
let stepRunner: CachedRunner | undefined;
let evalRunner: CachedRunner | undefined;

function runnerFor(cached: CachedRunner | undefined, model: ModelShape, rows: number): CachedRunner {
  const key = `${JSON.stringify(model)}/${rows}`;
  if (cached?.key === key) return cached;
  const network = buildNetwork(model.layers, model, model.classes, 'model');
  return { key, runner: new NetworkRunner(network, rows), paramCount: network.paramCount };
}

/** What a run's steps need besides the buffers, made once per run (per shared memory and worker count). */
interface RunParts {
  readonly optimizer: OptimizerMemory;
  readonly workers: number;
  readonly adam: AdamKernel;
  /** Each shard's gradient slot. */
  readonly slots: readonly Float64Array[];
  /** Each slice of the parameters that one update covers. */
  readonly slices: readonly ParamRange[];
}
let run: RunParts | undefined;

function runPartsFor(task: StepsTask, paramCount: number): RunParts {
  const { optimizer } = task.shared;
  if (run?.optimizer === optimizer && run.workers === task.workers) return run;
  const { workers } = task;
  const slots = Array.from({ length: workers }, (_, k) =>
    optimizer.grads.subarray(k * optimizer.slotLength, k * optimizer.slotLength + paramCount),
  );
  const slices = Array.from({ length: workers }, (_, k) => paramSliceOf(paramCount, k, workers));
  run = { optimizer, workers, adam: new AdamKernel(optimizer, task.adam), slots, slices };
  return run;
}

/** Ends the worker's thread at once, without an answer: what an injected `exit` fault does. */
export type ExitThread = (code: number) => never;

/**
 * Runs one of the coordinator's tasks: what a worker does with each, whether a Piscina worker
 * thread (worker.ts) or a browser's Web Worker (browser/worker.ts).
 */
export function runTask(task: Task, exit: ExitThread): EvaluateResult | undefined {
  // This worker has started: from here on, the coordinator's watchdog times its steps.
  Atomics.add(task.shared.control, CTRL_TASKS_STARTED, 1);
  switch (task.kind) {
    case 'steps':
      runSteps(task, exit);
      return undefined;
    case 'evaluate':
      return runEvaluate(task, exit);
  }
}

/** The step's Adam parameters, reused from step to step. */
const kernelStep = { t: 0, learningRate: 0, scale: 0 };
const AFTER_GRADIENTS = { reset: CTRL_NEXT_SLICE };
const AFTER_UPDATE = { decideStop: true };

/**
 * One worker's part of a chunk of steps. Per step, in lockstep with the other computing workers:
 * 1. compute the gradients of its shards of the global batch, each into the shard's slot, layer
 *    by layer over all of them (a layer may sum over every shard of the step there, with the
 *    collective, at a barrier of its own);
 * 2. barrier: all slots are written;
 * 3. all-reduce and Adam on slices of the parameters (a sharded optimizer: the slices of the one
 *    shared parameter vector are updated in parallel, so there is nothing to broadcast);
 * 4. barrier: all parameters are updated, the next step may read them.
 * There are as many shards and slices as workers. With no more workers than cores, worker k
 * computes shard k. With more, only `parties` workers (one per core) compute, each a run of
 * consecutive shards, the same every step, and slices taken from a shared counter until none is
 * left; the others return at once: running them too would only have the kernel time-slice them
 * mid-matMul and wake one for every handover. Shard k is the same samples and goes to slot k
 * whoever computes it, so the result is the same.
 */
function runSteps(task: StepsTask, exit: ExitThread): void {
  const { shared, rank, workers, parties, batchSize } = task;
  if (rank >= parties) return;
  stepRunner = runnerFor(stepRunner, shared.model, Math.ceil(batchSize / workers));
  const { runner, paramCount } = stepRunner;
  const { adam, slots, slices } = runPartsFor(task, paramCount);
  const { optimizer, control, order, stats } = shared;
  const timings = shared.timings.subarray(rank * TIMING_WORDS, (rank + 1) * TIMING_WORDS);
  const { images, labels, count: samples } = shared.train;
  const source = { images, labels, order };
  const mine = shardOf(0, workers, rank, parties);
  const shards: ShardWork[] = Array.from({ length: mine.end - mine.start }, (_, j) => {
    const index = mine.start + j;
    return { index, start: 0, end: 0, grad: slots[index], lossSum: 0, correct: 0 };
  });
  const collective = new SharedCollective(shared.collective, control, parties);
  const augment = task.augment === undefined ? undefined : { config: task.augment, epoch: task.epoch };
  const options = { seed: task.seed, step: 0, augment, collective, state: shared.state, updatesState: rank === 0 };
  try {
    for (let step = task.firstStep; step < task.endStep; step++) {
      const batchStart = step * batchSize;
      const batchCount = Math.min(batchSize, samples - batchStart);
      kernelStep.t = task.adamStepsBefore + (step - task.firstStep) + 1;
      kernelStep.learningRate = learningRateAt(
        task.schedule,
        task.adam.learningRate,
        kernelStep.t - 1,
        task.totalSteps,
      );
      kernelStep.scale = 1 / batchCount;
      if (task.faults.length > 0) injectFaults(task, kernelStep.t - 1, 'step', exit);
      const t0 = performance.now();
      for (const shard of shards) shardOf(batchStart, batchCount, shard.index, workers, shard);
      collective.beginStep(batchCount);
      options.step = kernelStep.t - 1;
      runner.prepare(optimizer.params, shared.state);
      runner.gradients(source, shards, options);
      // The step's parameter tensors are the only ones alive here, unless something leaks.
      timings[TIMING_TENSORS] = tf.memory().numTensors;
      runner.release();
      for (const shard of shards) {
        if (!Number.isFinite(shard.lossSum)) {
          // Training diverged: stop before Adam spreads NaN into the parameters.
          Atomics.compareExchange(control, CTRL_NONFINITE_STEP, 0, step + 1);
          throw new Error(`the loss is ${shard.lossSum} at step ${step + 1} (shard ${shard.index})`);
        }
        const at = shard.index * STATS_WORDS;
        stats[at + STATS_LOSS] += shard.lossSum;
        stats[at + STATS_CORRECT] += shard.correct;
        stats[at + STATS_SAMPLES] += shard.end - shard.start;
      }
      const t1 = performance.now();
      barrier(control, parties, AFTER_GRADIENTS);
      const t2 = performance.now();
      for (
        let k = Atomics.add(control, CTRL_NEXT_SLICE, 1);
        k < workers;
        k = Atomics.add(control, CTRL_NEXT_SLICE, 1)
      ) {
        if (adam.update(slices[k], kernelStep)) {
          Atomics.compareExchange(control, CTRL_NONFINITE_STEP, 0, step + 1);
          throw new Error(`a gradient is NaN or infinite at step ${step + 1} (slice ${k})`);
        }
      }
      const t3 = performance.now();
      barrier(control, parties, AFTER_UPDATE);
      if (rank === 0) Atomics.store(control, CTRL_STEPS_DONE, step + 1);
      timings[TIMING_GRADIENT] += t1 - t0;
      timings[TIMING_WAIT_GRADIENTS] += t2 - t1;
      timings[TIMING_UPDATE] += t3 - t2;
      timings[TIMING_WAIT_UPDATE] += performance.now() - t3;
      timings[TIMING_STEPS]++;
      if (Atomics.load(control, CTRL_STOP_DECISION) !== 0) break;
    }
  } catch (error) {
    requestStop(control);
    throw error;
  }
}

/** For tests of fault handling: fails as `task.faults` says, when the run has taken `stepsTaken` steps. */
function injectFaults(
  task: StepsTask | EvaluateTask,
  stepsTaken: number,
  phase: 'step' | 'evaluation',
  exit: ExitThread,
): void {
  task.faults.forEach((fault, i) => {
    if (fault.rank !== task.rank || fault.step !== stepsTaken || (fault.phase ?? 'step') !== phase) return;
    if (Atomics.add(task.shared.faultsInjected, i, 1) >= (fault.times ?? 1)) return;
    if (fault.kind === 'throw') {
      throw new Error(phase === 'step' ? `injected fault at step ${stepsTaken + 1}` : 'injected fault in evaluation');
    }
    if (fault.kind === 'exit') exit(3);
    // A hang: blocked for good, as a worker stuck in native code would be.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
}

/** Scores test images `[start, end)` with the current parameters, in chunks of EVAL_ROWS. */
function runEvaluate(task: EvaluateTask, exit: ExitThread): EvaluateResult {
  const { shared, start, end } = task;
  if (task.faults.length > 0) injectFaults(task, task.stepsTaken, 'evaluation', exit);
  evalRunner = runnerFor(evalRunner, shared.model, EVAL_ROWS);
  const { runner } = evalRunner;
  const { images, labels } = shared.test;
  let lossSum = 0;
  let correct = 0;
  runner.prepare(shared.optimizer.params, shared.state);
  try {
    for (let from = start; from < end; from += EVAL_ROWS) {
      const score = runner.evaluate({ images, labels, start: from, end: Math.min(end, from + EVAL_ROWS) });
      lossSum += score.lossSum;
      correct += score.correct;
    }
  } finally {
    runner.release();
  }
  return { lossSum, correct, count: end - start };
}
