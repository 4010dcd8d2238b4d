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
