import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { checkSplit, type Dataset, sharedSplit } from '../data/dataset.js';
import { AbortError, NonFiniteError, OptionError, WorkerError } from '../errors.js';
import {
  CONTROL_WORDS, CTRL_NONFINITE_STEP, CTRL_STEPS_DONE, type EvaluateResult, paramLayout, requestStop, shardOf, type SharedState,
  STATS_CORRECT, STATS_LOSS, STATS_SAMPLES, STATS_WORDS, type Task, TIMING_WORDS,
} from '../protocol.js';
import { StoppedError } from '../worker/sync.js';
import { createOptimizerMemory } from './adam-kernel.js';
import type { TrainConfig } from './options.js';
import { Rng } from './rng.js';

const WORKER_FILE = new URL('../worker/worker.js', import.meta.url).href;

/** Sums over the workers of the epoch so far. */
export interface EpochTotals {
  readonly lossSum: number;
  readonly correct: number;
  readonly samples: number;
}

/**
 * One training run's workers and shared memory: the step loop's engine, used by `train()` and by
 * the benchmarks. It owns the seeded generator (initial weights first, then every shuffle), Adam's
 * step counter, and the Piscina pool, which it keeps until `close()`.
 */
export class Session {
  readonly shared: SharedState;
  readonly stepsPerEpoch: number;
  readonly #config: TrainConfig;
  readonly #rng: Rng;
  readonly #pool: Piscina<Task, EvaluateResult | undefined>;
  /** Steps taken so far: Adam's t before the next step, and the schedule's position. */
  #globalStep = 0;
  readonly #cores = availableParallelism();

  constructor(data: Dataset, config: TrainConfig) {
    this.#config = config;
    this.#rng = new Rng(config.seed);
    this.shared = createSharedState(data, config, this.#rng);
    this.stepsPerEpoch = Math.ceil(data.train.count / config.batchSize);
    this.#pool = new Piscina({
      filename: WORKER_FILE,
      minThreads: config.workers,
      maxThreads: config.workers,
      // Workers keep tfjs, its wasm module and their buffers between tasks; none may exit when idle.
      idleTimeout: Infinity,
    });
  }

  /** Shuffles the training order for a new epoch and zeroes the epoch's totals and step counter. */
  beginEpoch(): void {
    const { order, stats, control } = this.shared;
    for (let i = 0; i < order.length; i++) order[i] = i;
    this.#rng.shuffle(order);
    stats.fill(0);
    Atomics.store(control, CTRL_STEPS_DONE, 0);
  }

  /** Runs steps `[firstStep, endStep)` of the current epoch on all workers in lockstep. */
  async runSteps(firstStep: number, endStep: number, signal?: AbortSignal): Promise<void> {
    const { workers, batchSize, adam, schedule, epochs } = this.#config;
    const tasks: Task[] = Array.from({ length: workers }, (_, rank) => ({
      kind: 'epoch', shared: this.shared, rank, workers, parties: Math.min(workers, this.#cores),
      batchSize, firstStep, endStep,
      adamStepsBefore: this.#globalStep, adam, schedule, totalSteps: epochs * this.stepsPerEpoch,
    }));
    await this.#runTogether(tasks, signal);
    this.#globalStep += endStep - firstStep;
  }

  /** Mean loss and accuracy on the test split, sharded across the workers. */
  async evaluate(signal?: AbortSignal): Promise<{ testLoss: number; testAccuracy: number }> {
    const { test } = this.shared;
    const workers = this.#config.workers;
    const tasks: Task[] = Array.from({ length: workers }, (_, rank) => {
      const [start, end] = shardOf(0, test.count, rank, workers);
      return { kind: 'evaluate', shared: this.shared, start, end };
    });
    const results = (await this.#runTogether(tasks, signal)) as EvaluateResult[];
    const lossSum = results.reduce((sum, r) => sum + r.lossSum, 0);
    const correct = results.reduce((sum, r) => sum + r.correct, 0);
    return { testLoss: lossSum / test.count, testAccuracy: correct / test.count };
  }

  /** Steps of the current epoch done so far; safe to call while steps run. */
  stepsDone(): number {
    return Atomics.load(this.shared.control, CTRL_STEPS_DONE);
  }

  /** The epoch's totals so far; while steps run, a snapshot good enough for progress. */
  epochTotals(): EpochTotals {
    const { stats } = this.shared;
    let lossSum = 0;
    let correct = 0;
    let samples = 0;
    for (let base = 0; base < stats.length; base += STATS_WORDS) {
      lossSum += stats[base + STATS_LOSS];
      correct += stats[base + STATS_CORRECT];
      samples += stats[base + STATS_SAMPLES];
    }
    return { lossSum, correct, samples };
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }

  /**
   * Runs one task per worker, all at once: epoch tasks wait for each other at barriers, so they must
   * all be running. If one fails, or the caller aborts, the others are stopped at their next
   * barrier; the promise rejects with the first real error (or an AbortError), never hangs.
   */
  async #runTogether(tasks: Task[], signal?: AbortSignal): Promise<(EvaluateResult | undefined)[]> {
    const { control } = this.shared;
    const onAbort = () => requestStop(control);
    signal?.addEventListener('abort', onAbort);
    try {
      const settled = await Promise.allSettled(
        tasks.map((task) =>
          this.#pool.run(task).catch((error: unknown) => {
            requestStop(control);
            throw error;
          }),
        ),
      );
      throwIfAborted(signal);
      const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as Error] : []));
      if (failures.length > 0) {
        const nonFinite = Atomics.load(control, CTRL_NONFINITE_STEP);
        if (nonFinite > 0) {
          const epoch = Math.floor(this.#globalStep / this.stepsPerEpoch) + 1;
          throw new NonFiniteError(
            `training diverged: the loss became NaN or infinite at epoch ${epoch}, step ${nonFinite}; ` +
              'no model was saved. Lower the learning rate (--lr)',
          );
        }
        const cause = failures.find((e) => !(e instanceof Error && e.name === StoppedError.name)) ?? failures[0];
        throw new WorkerError(`a worker failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
      }
      return settled.map((s) => (s as PromiseFulfilledResult<EvaluateResult | undefined>).value);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AbortError();
}

/** The run's shared memory, with Glorot-uniform weights and zero biases as Keras initialises them. */
function createSharedState(data: Dataset, config: TrainConfig, rng: Rng): SharedState {
  const pixels = data.height * data.width;
  const classes = data.classNames.length;
  if (!(Number.isInteger(pixels) && pixels > 0 && classes >= 2)) {
    throw new OptionError(`data must have positive integer height and width and at least 2 class names, got ${data.height}x${data.width} and ${classes}`);
  }
  checkSplit(data.train, pixels, classes, 'training data');
  checkSplit(data.test, pixels, classes, 'test data');
  if (data.train.count === 0 || data.test.count === 0) {
    throw new OptionError(`data must have at least one training and one test image, got ${data.train.count} and ${data.test.count}`);
  }
  const sizes = [pixels, ...config.hidden, classes];
  const { layers, count } = paramLayout(sizes);
  const optimizer = createOptimizerMemory(count, config.workers);
  const { params } = optimizer;
  for (const layer of layers) {
    const limit = Math.sqrt(6 / (layer.inputs + layer.outputs));
    for (let i = layer.weightOffset; i < layer.biasOffset; i++) params[i] = (2 * rng.next() - 1) * limit;
  }
  return {
    train: sharedSplit(data.train),
    test: sharedSplit(data.test),
    sizes,
    optimizer,
    stats: new Float64Array(new SharedArrayBuffer(config.workers * STATS_WORDS * 8)),
    timings: new Float64Array(new SharedArrayBuffer(config.workers * TIMING_WORDS * 8)),
    order: new Int32Array(new SharedArrayBuffer(data.train.count * 4)),
    control: new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4)),
  };
}
