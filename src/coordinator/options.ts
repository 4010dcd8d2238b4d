import type * as tf from '@tensorflow/tfjs';
import { type Augment, checkAugment } from '../data/augment.js';
import type { Dataset } from '../data/dataset.js';
import { OptionError } from '../errors.js';
import type { LayerSpec } from '../model/kinds.js';
import { parseLayers, type Preset, PRESETS } from '../model/spec.js';
import { ADAM_DEFAULTS } from '../optimizer/adam.js';
import { type LearningRateSchedule, SCHEDULES } from '../optimizer/schedule.js';
import type { Checkpoint } from './config.js';
import type { BatchProgress, EpochLog, TrainConfig } from './config.js';

export interface TrainOptions {
  /**
   * Worker threads computing gradients.
   * @default the cores: os.availableParallelism() in Node, navigator.hardwareConcurrency in a browser
   */
  workers?: number;
  /** @default 10 */
  epochs?: number;
  /**
   * Samples per step, over all workers together (the global batch). The tutorial's is 32; 128 with
   * a 0.003 learning rate decayed by a cosine reaches a higher test accuracy in less time (README).
   * @default 128
   */
  batchSize?: number;
  /** Adam's initial learning rate. @default 0.003 */
  learningRate?: number;
  /** How the learning rate changes over the run. @default 'cosine' */
  schedule?: LearningRateSchedule;
  /** Seeds the initial weights and the shuffles. @default 1 */
  seed?: number;
  /**
   * The model: `'mlp'`, the tutorial's Flatten -> Dense(128, relu) -> Dense(10, softmax) (with
   * `hidden` widths); `'cnn'`, the convolutional preset; a layer list such as
   * `'conv:32:3,pool,flatten,dense:128,dense:10'` (see LAYERS_GRAMMAR); or a `tf.Sequential` built
   * with tfjs's layer API, trained from its current weights, which it gets back, as with `model.fit`.
   * @default 'mlp'
   */
  model?: string | tf.Sequential;
  /** Widths of the hidden ReLU layers of the `mlp` model. @default [128] */
  hidden?: readonly number[];
  /**
   * Random changes to the training images, e.g. `{ flip: true, shift: 2 }`: a left-right flip with
   * probability 1/2, and a move by up to `shift` pixels along each axis, filled with zeros (less
   * than half the images' smaller side). Each image's change is a hash of the seed, the epoch and
   * the image, so any worker count, and a resumed run, make the same ones; the test images are
   * never changed.
   * @default none
   */
  augment?: Augment;
  /** The data to train and test on. @default Fashion-MNIST, found by `loadFashionMnist({ dir: dataDir })` */
  data?: Dataset;
  /**
   * Where to look for Fashion-MNIST when `data` is not given (see `loadFashionMnist`), or a folder
   * of pictures with train/ and test/ (see `loadImageFolder`, which has more options).
   */
  dataDir?: string;
  /** Stops training: the promise rejects with an AbortError within one step. */
  signal?: AbortSignal;
  /** Called after each epoch's evaluation; training waits for a returned promise. */
  onEpochEnd?: (log: EpochLog) => void | Promise<void>;
  /**
   * Called during an epoch, at most every `progressIntervalMs`, and at its end: each step at most
   * once and in order, so steps in between may be skipped, as a throttled Keras progress bar does.
   */
  onBatchEnd?: (progress: BatchProgress) => void;
  /** Called with a line of text a person would want to read: what the run is, and its final score. */
  onLog?: (line: string) => void;
  /** The shortest time between two `onBatchEnd` calls. @default 100 */
  progressIntervalMs?: number;
  /** Where checkpoints go (`checkpoint.bin`); without it, none is written. */
  checkpointDir?: string;
  /** Write a checkpoint every this many epochs (0: only when interrupted). @default 0 */
  checkpointEvery?: number;
  /**
   * Continue a checkpointed run (see `readCheckpoint`). Its settings come from the checkpoint, but
   * for `workers`, which may differ: the result is then the same up to float rounding (the shards'
   * sums are added in another order), where the same worker count repeats it bit for bit.
   */
  resume?: Checkpoint;
  /**
   * Stops training after the step in progress, writes a checkpoint (with `checkpointDir`), and
   * rejects with InterruptedError: what SIGINT does on the command line.
   */
  interrupt?: AbortSignal;
  /** Worker failures in a row (throw, exit, hang) survived by restarting the workers. @default 3 */
  maxRetries?: number;
  /**
   * A step, or a worker's part of an evaluation, taking longer than this means a worker hung. The
   * time new workers take to start (loading tfjs-wasm) does not count. @default 60000
   */
  stepTimeoutMs?: number;
}

/**
 * Every default, in one place. The tutorial's recipe is `batchSize: 32, learningRate: 0.001,
 * schedule: 'constant'`; these reach a higher accuracy in less time (measured: README).
 */
export const DEFAULTS = {
  epochs: 10,
  batchSize: 128,
  learningRate: 0.003,
  schedule: 'cosine',
  seed: 1,
  model: 'mlp',
  hidden: [128],
  progressIntervalMs: 100,
  checkpointEvery: 0,
  maxRetries: 3,
  stepTimeoutMs: 60_000,
} as const;

/** One worker per core, within the limit. */
export function defaultWorkers(cores: number): number {
  return Math.min(cores, LIMITS.workers.max);
}

interface Limit {
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
}

/** The range of every numeric option, shared by the library and the command line's messages. */
export const LIMITS = {
  workers: { min: 1, max: 64, integer: true },
  epochs: { min: 1, max: 100_000, integer: true },
  batchSize: { min: 1, max: 1_000_000, integer: true },
  learningRate: { min: Number.MIN_VALUE, max: 1e6, integer: false },
  seed: { min: 0, max: 2 ** 32 - 1, integer: true },
  hidden: { min: 1, max: 8192, integer: true },
  progressIntervalMs: { min: 1, max: 3_600_000, integer: true },
  checkpointEvery: { min: 0, max: 100_000, integer: true },
  maxRetries: { min: 0, max: 100, integer: true },
  stepTimeoutMs: { min: 1, max: 86_400_000, integer: true },
} as const satisfies Record<string, Limit>;

export type LimitedOption = keyof typeof LIMITS;

/**
 * Throws an OptionError unless `value` is within the option's limits. `label` names the option as
 * the caller knows it (`workers`, or `--workers` on the command line); `shown` is the value as the
 * caller wrote it.
 */
export function checkNumber(name: LimitedOption, value: unknown, label: string = name, shown?: string): number {
  const { min, max, integer } = LIMITS[name];
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value >= min &&
    value <= max &&
    (!integer || Number.isInteger(value));
  if (!ok) {
    const kind = integer ? `an integer between ${min} and ${max}` : `a number greater than 0 and at most ${max}`;
    throw new OptionError(`${label} must be ${kind}, got ${shown ?? JSON.stringify(value) ?? String(value)}`);
  }
  return value as number;
}

export function checkHidden(value: unknown, label = 'hidden', shown?: string): number[] {
  const { min, max } = LIMITS.hidden;
  const ok =
    Array.isArray(value) && value.length <= 16 && value.every((w) => Number.isInteger(w) && w >= min && w <= max);
  if (!ok) {
    throw new OptionError(
      `${label} must be a list of up to 16 layer widths, each an integer between ${min} and ${max}, got ${shown ?? JSON.stringify(value)}`,
    );
  }
  return [...(value as number[])];
}

export function checkSchedule(value: unknown, label = 'schedule', shown?: string): LearningRateSchedule {
  if (!SCHEDULES.includes(value as LearningRateSchedule)) {
    throw new OptionError(`${label} must be one of ${SCHEDULES.join(', ')}, got ${shown ?? JSON.stringify(value)}`);
  }
  return value as LearningRateSchedule;
}

/** How the model was asked for; the layers are known once the data (its image size and classes) is. */
export type ModelChoice =
  | { readonly kind: 'preset'; readonly preset: Preset; readonly hidden: readonly number[] }
  | { readonly kind: 'layers'; readonly layers: readonly LayerSpec[] }
  | { readonly kind: 'sequential'; readonly model: tf.Sequential };

/** A tf.Sequential, recognised by its class name: the caller's tfjs may be another copy than ours. */
export function isSequential(value: unknown): value is tf.Sequential {
  const candidate = value as { getClassName?: () => string } | null;
  return typeof candidate?.getClassName === 'function' && candidate.getClassName() === 'Sequential';
}

export function checkModel(model: unknown, hidden: unknown, label = 'model'): ModelChoice {
  const choice: ModelChoice =
    model === undefined || PRESETS.includes(model as Preset)
      ? { kind: 'preset', preset: (model ?? DEFAULTS.model) as Preset, hidden: checkHidden(hidden ?? DEFAULTS.hidden) }
      : typeof model === 'string'
        ? { kind: 'layers', layers: parseLayers(model, label) }
        : isSequential(model)
          ? { kind: 'sequential', model }
          : (() => {
              throw new OptionError(
                `${label} must be ${PRESETS.join(' or ')}, a layer list such as "flatten,dense:128,dense:10", or a tf.Sequential`,
              );
            })();
  if (hidden !== undefined && !(choice.kind === 'preset' && choice.preset === 'mlp')) {
    throw new OptionError('hidden applies to the mlp model only; give the other layers in model instead');
  }
  return choice;
}

/** Everything but the model, whose layers depend on the data (see ModelChoice). */
export type ResolvedOptions = Omit<TrainConfig, 'model'> & {
  model: ModelChoice;
  progressIntervalMs: number;
  checkpointEvery: number;
  maxRetries: number;
  stepTimeoutMs: number;
};

/**
 * Defaults in one place, each option checked, before any worker starts. `cores`, the platform's,
 * gives the default worker count: one per core.
 */
export function resolveOptions(options: TrainOptions, cores: number): ResolvedOptions {
  return {
    workers: checkNumber('workers', options.workers ?? defaultWorkers(cores)),
    epochs: checkNumber('epochs', options.epochs ?? DEFAULTS.epochs),
    batchSize: checkNumber('batchSize', options.batchSize ?? DEFAULTS.batchSize),
    seed: checkNumber('seed', options.seed ?? DEFAULTS.seed),
    model: checkModel(options.model, options.hidden),
    adam: {
      ...ADAM_DEFAULTS,
      learningRate: checkNumber('learningRate', options.learningRate ?? DEFAULTS.learningRate),
    },
    schedule: checkSchedule(options.schedule ?? DEFAULTS.schedule),
    augment: checkAugment(options.augment),
    progressIntervalMs: checkNumber('progressIntervalMs', options.progressIntervalMs ?? DEFAULTS.progressIntervalMs),
    checkpointEvery: checkNumber('checkpointEvery', options.checkpointEvery ?? DEFAULTS.checkpointEvery),
    maxRetries: checkNumber('maxRetries', options.maxRetries ?? DEFAULTS.maxRetries),
    stepTimeoutMs: checkNumber('stepTimeoutMs', options.stepTimeoutMs ?? DEFAULTS.stepTimeoutMs),
  };
}
