import type { AugmentConfig } from './data/augment.js';
import type { LayerSpec } from './model/kinds.js';
import type { AdamConfig } from './optimizer/adam.js';
import type { OptimizerMemory } from './optimizer/adam-kernel.js';
import type { LearningRateSchedule } from './optimizer/schedule.js';

/**
 * Everything that crosses between the coordinator and its workers: the task messages, and the
 * layout of the shared memory they both read and write. Nothing else is shared.
 *
 * The hot path sends no messages. One `steps` task per worker runs a chunk of steps (between the
 * coordinator's snapshots); inside it the workers meet at barriers in shared memory (Atomics) twice
 * per step: once when every gradient slot is written, once when every slice of the parameters has
 * been updated; and once more at each sum of the collective that a layer calls, if any.
 */

/** A dataset split as it lives in shared memory: `count` images of height x width x channels values each (see Split). */
export interface SharedSplit {
  readonly images: Uint8Array | Float32Array;
  readonly labels: Uint8Array;
  readonly count: number;
}

/**
 * The shared buffers of one training run. Views over SharedArrayBuffers: passing them in a task
 * message shares them, it never copies.
 */
export interface SharedState {
  readonly train: SharedSplit;
  readonly test: SharedSplit;
  /** The model; its flat parameter vector is laid out as `buildNetwork` places its layers. */
  readonly model: ModelShape;
  /**
   * Parameters, Adam's moments, and one gradient slot per worker rank, in one shared
   * WebAssembly.Memory that the optimizer's SIMD kernel works on in place.
   */
  readonly optimizer: OptimizerMemory;
  /**
   * The layers' state, which is not trained (a batch normalisation's moving statistics), laid out
   * as `buildNetwork` places it: beside the optimizer's memory, never in it, so that Adam cannot
   * touch it. Empty for a model whose layers keep none.
   */
  readonly state: Float32Array;
  /** The layers' sums over the step's shards (see CollectiveMemory). */
  readonly collective: CollectiveMemory;
  /** Per shard of the global batch: [loss sum, correct count, samples] of the epoch so far (see STATS_*). */
  readonly stats: Float64Array;
  /** Per rank: milliseconds spent in each phase of the steps, summed since the run began, and a tensor count (see TIMING_*). */
  readonly timings: Float64Array;
  /** The epoch's shuffled order of training-image indices. */
  readonly order: Int32Array;
  /** Barrier and progress words (see CTRL_*). */
  readonly control: Int32Array;
  /** How many times each injected fault (see Fault) has fired, across restarted workers. */
  readonly faultsInjected: Int32Array;
}

/** A model's layers on `height x width` images of `channels` channels, with `classes` outputs. */
export interface ModelShape {
  readonly layers: readonly LayerSpec[];
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classes: number;
}

/**
 * A failure to inject, for testing fault handling only: worker `rank` throws, exits or hangs once
 * the run has taken `step` steps, the first `times` times it gets there: at the start of the next
 * step, or, with `phase: 'evaluation'`, in the evaluation that follows them (after an epoch).
 */
export interface Fault {
  readonly rank: number;
  readonly step: number;
  readonly kind: 'throw' | 'exit' | 'hang';
  /** @default 'step' */
  readonly phase?: 'step' | 'evaluation';
  /** @default 1 */
  readonly times?: number;
}

/** `control` words. */
export const CTRL_BARRIER_COUNT = 0;
export const CTRL_BARRIER_GENERATION = 1;
/** Non-zero when the run must stop: a worker failed or the caller aborted. Workers check it at every barrier. */
export const CTRL_ABORT = 2;
/** Steps of the current epoch completed; the coordinator reads it to report progress. */
export const CTRL_STEPS_DONE = 3;
/** The next parameter slice for a computing worker to take. */
export const CTRL_NEXT_SLICE = 4;
/** 1 + the step (in the epoch) whose loss was NaN or infinite, when a worker stopped for that; else 0. */
export const CTRL_NONFINITE_STEP = 5;
/** Set by the coordinator: stop after the step in progress (a graceful stop, for a checkpoint). */
export const CTRL_STOP_REQUEST = 6;
/** The request as the last worker at a step's end saw it: every worker reads the same decision. */
export const CTRL_STOP_DECISION = 7;
/**
 * Tasks of the current run that have begun, counted by the workers: the coordinator's watchdog
 * times steps only once every worker has one, since starting (loading tfjs-wasm) is not a step.
 */
export const CTRL_TASKS_STARTED = 8;
export const CONTROL_WORDS = 9;

/**
 * The collective's slots (worker/collective.ts): one per shard of the step, `length` float64
 * values each, in two halves that alternate sums use. A computing worker writes its shards' slots,
 * meets the others at a barrier, and reads every slot; the next sum writes the other half. So one
 * barrier per sum is enough: a worker that writes a half again has passed the barrier of the sum
 * in between, which every worker reaches only once it has read that half.
 */
export interface CollectiveMemory {
  /** Half h's slot of shard k starts at `(h * shards + k) * length` (see collectiveSlotStart). */
  readonly values: Float64Array;
  readonly shards: number;
  /** Values per slot: the most any layer of the model sums at once (see LayerKind.collectiveLength). */
  readonly length: number;
}

export function createCollectiveMemory(shards: number, length: number): CollectiveMemory {
  return { values: new Float64Array(new SharedArrayBuffer(2 * shards * length * 8)), shards, length };
}

export function collectiveSlotStart(memory: CollectiveMemory, half: number, shard: number): number {
  return (half * memory.shards + shard) * memory.length;
}

export const STATS_LOSS = 0;
export const STATS_CORRECT = 1;
export const STATS_SAMPLES = 2;
export const STATS_WORDS = 3;

/** Computing the shard's gradient (gather, upload, forward, backward, read back). */
export const TIMING_GRADIENT = 0;
/** Waiting at the barrier until every gradient slot is written. */
export const TIMING_WAIT_GRADIENTS = 1;
/** All-reduce and Adam on the worker's parameter slice. */
export const TIMING_UPDATE = 2;
/** Waiting at the barrier until every slice is updated. */
export const TIMING_WAIT_UPDATE = 3;
/** Steps timed. */
export const TIMING_STEPS = 4;
/** The worker's live tfjs tensors at the end of its last step's shards: constant in a run that leaks none. */
export const TIMING_TENSORS = 5;
export const TIMING_WORDS = 6;

/** Run the steps `[firstStep, endStep)` of the current epoch as worker `rank` of `workers`. */
export interface StepsTask {
  readonly kind: 'steps';
  readonly shared: SharedState;
  readonly rank: number;
  readonly workers: number;
  /** How many workers compute, one per core at most: ranks `[0, parties)` (see runSteps). */
  readonly parties: number;
  readonly batchSize: number;
  /** The run's seed: with the step and the sample, it fixes every dropout mask. */
  readonly seed: number;
  /** The run's augmentation of the training images, if it has one (see data/augment.ts). */
  readonly augment: AugmentConfig | undefined;
  /** The 0-based epoch these steps are in: with the seed and the image, it fixes each image's augmentation. */
  readonly epoch: number;
  readonly firstStep: number;
  readonly endStep: number;
  /** Adam's step counter before `firstStep` (Adam's t starts at 1). */
  readonly adamStepsBefore: number;
  readonly adam: AdamConfig;
  /** How `adam.learningRate` changes over the run's `totalSteps` (see schedule.ts). */
  readonly schedule: LearningRateSchedule;
  readonly totalSteps: number;
  readonly faults: readonly Fault[];
}

/** Evaluate test images `[start, end)` with the current parameters, as worker `rank`. */
export interface EvaluateTask {
  readonly kind: 'evaluate';
  readonly shared: SharedState;
  readonly rank: number;
  readonly start: number;
  readonly end: number;
  /** Steps the run has taken: which faults aimed at evaluation fire. */
  readonly stepsTaken: number;
  readonly faults: readonly Fault[];
}

export type Task = StepsTask | EvaluateTask;

export interface EvaluateResult {
  readonly lossSum: number;
  readonly correct: number;
  readonly count: number;
}
