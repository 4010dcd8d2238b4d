import type { AugmentConfig } from '../data/augment.js';
import type { AdamConfig } from '../optimizer/adam.js';
import type { LearningRateSchedule } from '../optimizer/schedule.js';

/** The settings a run used, as recorded in `metrics.json` and in checkpoints. */
export interface TrainConfig {
  readonly workers: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  /** The model's layers, in the grammar of `--layers` (see model/spec.ts). */
  readonly model: string;
  readonly adam: AdamConfig;
  readonly schedule: LearningRateSchedule;
  /**
   * How the training images are augmented; absent for none (and in the checkpoints of runs from
   * before augmentation, which had none).
   */
  readonly augment?: AugmentConfig;
}

/** What one epoch produced; `metrics.json` holds one per epoch. */
export interface EpochLog {
  /** 1-based. */
  readonly epoch: number;
  /** Mean training loss and accuracy over the epoch's samples, as the progress bar showed them. */
  readonly loss: number;
  readonly accuracy: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
  /** Training and evaluation time of the epoch. */
  readonly seconds: number;
}

/** Progress within an epoch: each step is reported at most once, in order (some may be skipped). */
export interface BatchProgress {
  readonly epoch: number;
  /** Steps done in this epoch, of `steps`. */
  readonly step: number;
  readonly steps: number;
  /** Running means over the epoch's samples so far. */
  readonly loss: number;
  readonly accuracy: number;
  readonly seconds: number;
}

/**
 * A run saved between two steps, from which `train({ resume })` continues exactly where it
 * stopped: `readCheckpoint(dir)` reads one that `train` wrote into its `checkpointDir`.
 */
export interface Checkpoint {
  /** The run's settings; a resumed run keeps them (only its worker count may change). */
  readonly config: TrainConfig;
  /** How many training images the run was on: a resumed run must be given the same data. */
  readonly trainCount: number;
  /** Epochs finished and evaluated. */
  readonly epochsDone: number;
  /** Steps of the next epoch done; 0 when the checkpoint was made between epochs. */
  readonly stepsDone: number;
  /** One log per finished epoch. */
  readonly history: readonly EpochLog[];
  /** The flat parameter vector, in the trainer's own layout. */
  readonly params: Float32Array;
  /**
   * The layers' state that is not trained (a batch normalisation's moving statistics), laid out
   * likewise; empty for a model whose layers keep none.
   */
  readonly state: Float32Array;
  /** Adam's state: both moments, laid out as `params`, and the steps taken so far (Adam's t). */
  readonly adam: { readonly m: Float32Array; readonly v: Float32Array; readonly steps: number };
  /**
   * The epoch in progress: its shuffled order of training-image indices, and per shard of the
   * global batch, the running [loss sum, correct answers, samples] of its steps so far.
   */
  readonly epoch: { readonly order: Int32Array; readonly stats: Float64Array };
  /** The seeded generator's state, which makes the shuffles of the epochs to come. */
  readonly rngState: number;
}
