import { channelsOf, type Dataset, sharedSplit } from '../data/dataset.js';
import { AbortError, NonFiniteError, WorkerError } from '../errors.js';
import { initializeParams, type Network } from '../model/network.js';
import { createOptimizerMemory } from '../optimizer/adam-kernel.js';
import {
  CONTROL_WORDS,
  createCollectiveMemory,
  CTRL_NONFINITE_STEP,
  CTRL_STEPS_DONE,
  CTRL_STOP_REQUEST,
  CTRL_TASKS_STARTED,
  type EvaluateResult,
  type Fault,
  type SharedState,
  STATS_CORRECT,
  STATS_LOSS,
  STATS_SAMPLES,
  STATS_WORDS,
  type Task,
  TIMING_WORDS,
} from '../protocol.js';
import { Rng } from '../rng.js';
import { shardOf } from '../sharding.js';
import { requestStop, StoppedError } from '../stop.js';
import type { Checkpoint } from './config.js';
import type { TrainConfig } from './config.js';
import { DEFAULTS } from './options.js';
import type { Platform, WorkerPool } from './platform.js';

/**
 * How long new workers may take to start (each loads tfjs and its wasm module: about half a second
 * here, several on a loaded machine) before they count as hung, when `stepTimeoutMs` is shorter.
 */
const START_TIMEOUT_MS = 60_000;

/** Sums over the workers of the epoch so far. */
export interface EpochTotals {
  readonly lossSum: number;
  readonly correct: number;
  readonly samples: number;
}

/** What a run must get back to after a worker failed: the state at the start of a chunk of steps. */
export interface Snapshot {
  readonly params: Float32Array;
  readonly state: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly stats: Float64Array;
  readonly globalStep: number;
  readonly stepsDone: number;
}

/** What a checkpoint takes from a session between steps, and gives back to a new one. */
export type SessionState = Pick<Checkpoint, 'stepsDone' | 'params' | 'state' | 'adam' | 'epoch' | 'rngState'>;

export interface RunStepsOptions {
  /** Aborts at once: the promise rejects with AbortError. */
  readonly signal?: AbortSignal;
  /** Stops after the step in progress: the promise resolves with the steps done. */
  readonly stop?: AbortSignal;
  /** A step that takes longer than this is a hung worker. @default DEFAULTS.stepTimeoutMs */
  readonly stepTimeoutMs?: number;
}

export interface SessionOptions {
  /** Where the workers come from, and how many cores they share. */
  readonly platform: Pick<Platform, 'cores' | 'createPool'>;
  /** Checked already (see checkDataset). */
  readonly data: Dataset;
  readonly config: TrainConfig;
  /** The model, placed on the data's images (see buildNetwork). */
  readonly network: Network;
  /** Where training starts from, parameters and state; when absent, Keras's initialisation drawn from the seed. */
  readonly initial?: { readonly params: Float32Array; readonly state: Float32Array };
  /** For tests of fault handling only: failures to inject into the workers. */
  readonly faults?: readonly Fault[];
}

export interface EvaluateOptions {
  /** Aborts at once: the promise rejects with AbortError. */
  readonly signal?: AbortSignal;
  /** A worker whose part of the evaluation takes longer than this hung. @default DEFAULTS.stepTimeoutMs */
  readonly stepTimeoutMs?: number;
}

/**
 * One training run's workers and shared memory: the step loop's engine, used by `train()` and by
 * the benchmarks. It owns the seeded generator (initial weights first, then every shuffle), Adam's
 * step counter, and the worker pool, which it keeps until `close()` (or replaces, in `restore`).
 */
export class Session {
  readonly shared: SharedState;
  readonly network: Network;
  readonly stepsPerEpoch: number;
  readonly #config: TrainConfig;
  readonly #rng: Rng;
  readonly #faults: readonly Fault[];
  readonly #platform: SessionOptions['platform'];
  #pool: WorkerPool;
  /** Steps taken so far: Adam's t before the next step, and the schedule's position. */
  #globalStep = 0;

  constructor(options: SessionOptions) {
    const { config, faults = [] } = options;
    this.#platform = options.platform;
    this.#config = config;
    this.#faults = faults;
    this.#rng = new Rng(config.seed);
    this.network = options.network;
    this.shared = createSharedState(options, this.#rng, faults.length);
    this.stepsPerEpoch = Math.ceil(options.data.train.count / config.batchSize);
    this.#pool = this.#platform.createPool(config.workers);
  }

  /** Shuffles the training order for a new epoch and zeroes the epoch's totals and step counter. */
  beginEpoch(): void {
    const { order, stats, control } = this.shared;
    for (let i = 0; i < order.length; i++) order[i] = i;
    this.#rng.shuffle(order);
    stats.fill(0);
    Atomics.store(control, CTRL_STEPS_DONE, 0);
  }

  /** Marks the epoch finished: the next starts from step 0 (and a checkpoint says so). */
  endEpoch(): void {
    Atomics.store(this.shared.control, CTRL_STEPS_DONE, 0);
  }

  /**
   * Runs steps `[firstStep, endStep)` of the current epoch on all workers in lockstep, and returns
   * how many ran: all of them, unless `stop` asked to stop after a step.
   */
  async runSteps(firstStep: number, endStep: number, options: RunStepsOptions = {}): Promise<number> {
    const { workers, batchSize, adam, schedule, epochs } = this.#config;
    const { control } = this.shared;
    const tasks: Task[] = Array.from({ length: workers }, (_, rank) => ({
      kind: 'steps',
      shared: this.shared,
      rank,
      workers,
      parties: Math.min(workers, this.#platform.cores),
      batchSize,
      seed: this.#config.seed,
      augment: this.#config.augment,
      // Every epoch has stepsPerEpoch steps, and firstStep is in the current one.
      epoch: Math.floor((this.#globalStep - firstStep) / this.stepsPerEpoch),
      firstStep,
      endStep,
      adamStepsBefore: this.#globalStep,
      adam,
      schedule,
      totalSteps: epochs * this.stepsPerEpoch,
      faults: this.#faults,
    }));
    Atomics.store(control, CTRL_STOP_REQUEST, 0);
    const onStop = () => Atomics.store(control, CTRL_STOP_REQUEST, 1);
    options.stop?.addEventListener('abort', onStop);
    if (options.stop?.aborted) onStop();
    try {
      await this.#runTogether(tasks, 'steps', options);
    } finally {
      options.stop?.removeEventListener('abort', onStop);
    }
    const done = Atomics.load(control, CTRL_STEPS_DONE) - firstStep;
    this.#globalStep += done;
    return done;
  }

  /** Mean loss and accuracy on the test split, sharded across the workers. */
  async evaluate(options: EvaluateOptions = {}): Promise<{ testLoss: number; testAccuracy: number }> {
    const { test } = this.shared;
    const workers = this.#config.workers;
    const tasks: Task[] = Array.from({ length: workers }, (_, rank) => {
      const { start, end } = shardOf(0, test.count, rank, workers);
      return {
        kind: 'evaluate',
        shared: this.shared,
        rank,
        start,
        end,
        stepsTaken: this.#globalStep,
        faults: this.#faults,
      };
    });
    const results = (await this.#runTogether(tasks, 'evaluation', options)) as EvaluateResult[];
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

  /** A copy of what the steps change, between steps (1.2 MB for the tutorial's model). */
  snapshot(): Snapshot {
    const { optimizer, stats } = this.shared;
    return {
      params: optimizer.params.slice(),
      state: this.shared.state.slice(),
      m: optimizer.m.slice(),
      v: optimizer.v.slice(),
      stats: stats.slice(),
      globalStep: this.#globalStep,
      stepsDone: this.stepsDone(),
    };
  }

  /** Everything a checkpoint needs, between steps. */
  state(): SessionState {
    const { optimizer, stats, order } = this.shared;
    return {
      stepsDone: this.stepsDone(),
      params: optimizer.params.slice(),
      state: this.shared.state.slice(),
      adam: { m: optimizer.m.slice(), v: optimizer.v.slice(), steps: this.#globalStep },
      epoch: { order: order.slice(), stats: stats.slice() },
      rngState: this.#rng.state,
    };
  }

  /**
   * Gets back to a snapshot after a worker failed: ends every worker (a hung one too) and starts
   * new ones, then restores the state, so that the steps since the snapshot can run again and give
   * the same result as if nothing had happened.
   */
  async restore(snapshot: Snapshot): Promise<void> {
    const old = this.#pool;
    this.#pool = this.#platform.createPool(this.#config.workers);
    await old.destroy().catch(() => undefined);
    this.#load(snapshot);
  }

  /**
   * Continues a checkpointed run in this fresh session: its parameters, Adam's state, the epoch's
   * order and totals, and the generator. A checkpoint made with another worker count has its
   * per-shard totals summed into the first shard's (the epoch's means are the same, to rounding).
   */
  resume(saved: SessionState): void {
    const { stats, order } = this.shared;
    let shardStats = saved.epoch.stats;
    if (shardStats.length !== stats.length) {
      shardStats = new Float64Array(stats.length);
      for (let i = 0; i < saved.epoch.stats.length; i++) shardStats[i % STATS_WORDS] += saved.epoch.stats[i];
    }
    this.#load({
      params: saved.params,
      state: saved.state,
      m: saved.adam.m,
      v: saved.adam.v,
      stats: shardStats,
      globalStep: saved.adam.steps,
      stepsDone: saved.stepsDone,
    });
    order.set(saved.epoch.order);
    this.#rng.state = saved.rngState;
  }

  #load(snapshot: Snapshot): void {
    const { optimizer, stats, control } = this.shared;
    optimizer.params.set(snapshot.params);
    this.shared.state.set(snapshot.state);
    optimizer.m.set(snapshot.m);
    optimizer.v.set(snapshot.v);
    stats.set(snapshot.stats);
    this.#globalStep = snapshot.globalStep;
    control.fill(0);
    Atomics.store(control, CTRL_STEPS_DONE, snapshot.stepsDone);
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }

  /**
   * Runs one task per worker, all at once: step tasks wait for each other at barriers, so they must
   * all be running. If one fails, or the caller aborts, the others are stopped at their next
   * barrier. A watchdog calls a worker hung when, once every worker has started its task, no step
   * ends (in an evaluation: no worker finishes its part) within `stepTimeoutMs`; starting is not a
   * step, and new workers get START_TIMEOUT_MS for it. Either way the promise rejects with the
   * first real error (or an AbortError), never hangs.
   */
  async #runTogether(
    tasks: Task[],
    phase: 'steps' | 'evaluation',
    options: { signal?: AbortSignal; stepTimeoutMs?: number },
  ): Promise<(EvaluateResult | undefined)[]> {
    const { signal } = options;
    const stepTimeoutMs = options.stepTimeoutMs ?? DEFAULTS.stepTimeoutMs;
    const { control } = this.shared;
    const onAbort = () => requestStop(control);
    signal?.addEventListener('abort', onAbort);
    const pending = new Set(tasks.map((_, rank) => rank));
    let watchdog: ReturnType<typeof setInterval> | undefined;
    let grace: ReturnType<typeof setTimeout> | undefined;
    Atomics.store(control, CTRL_TASKS_STARTED, 0);
    try {
      const all = Promise.allSettled(
        tasks.map((task, rank) =>
          this.#pool.run(task).then(
            (value) => {
              pending.delete(rank);
              return value;
            },
            (error: unknown) => {
              pending.delete(rank);
              requestStop(control);
              throw Object.assign(error instanceof Error ? error : new Error(String(error)), { rank });
            },
          ),
        ),
      );
      const hang = new Promise<never>((_, reject) => {
        const seconds = (ms: number) => `${ms / 1000} s`;
        const startTimeoutMs = Math.max(stepTimeoutMs, START_TIMEOUT_MS);
        const submitted = performance.now();
        let lastProgress = -1;
        let lastChange = 0;
        watchdog = setInterval(
          () => {
            const now = performance.now();
            const steps = Atomics.load(control, CTRL_STEPS_DONE);
            let hung: (ranks: number[]) => string;
            if (Atomics.load(control, CTRL_TASKS_STARTED) < tasks.length) {
              if (now - submitted < startTimeoutMs) return;
              hung = () => `the workers did not all start within ${seconds(startTimeoutMs)}`;
            } else {
              const progress = steps + tasks.length - pending.size;
              if (progress !== lastProgress) {
                lastProgress = progress;
                lastChange = now;
                return;
              }
              if (now - lastChange < stepTimeoutMs) return;
              hung = (ranks) =>
                phase === 'steps'
                  ? `worker ${ranks.join(', ')} hung: no step finished in ${seconds(stepTimeoutMs)} (step ${steps + 1} of the epoch)`
                  : `worker ${ranks.join(', ')} hung: its part of the evaluation did not finish in ${seconds(stepTimeoutMs)}`;
            }
            clearInterval(watchdog);
            requestStop(control);
            // The others stop at their next barrier; whoever is still running a step's time later hung.
            grace = setTimeout(() => reject(new WorkerError(hung([...pending]))), stepTimeoutMs);
          },
          Math.min(1000, stepTimeoutMs / 4),
        );
      });
      const settled = await Promise.race([all, hang]);
      throwIfAborted(signal);
      const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as Error & { rank?: number }] : []));
      if (failures.length > 0) {
        const nonFinite = Atomics.load(control, CTRL_NONFINITE_STEP);
        if (nonFinite > 0) {
          const epoch = Math.floor(this.#globalStep / this.stepsPerEpoch) + 1;
          throw new NonFiniteError(
            `training diverged: the loss or its gradient became NaN or infinite at epoch ${epoch}, step ${nonFinite}; ` +
              'no model was saved. Lower the learning rate (--lr)',
          );
        }
        const cause = failures.find((e) => e.message !== StoppedError.MESSAGE) ?? failures[0];
        const where =
          phase === 'steps'
            ? `at step ${Atomics.load(control, CTRL_STEPS_DONE) + 1} of the epoch`
            : 'in the evaluation';
        throw new WorkerError(`worker ${cause.rank} failed ${where}: ${cause.message}`, { cause });
      }
      return settled.map((s) => (s as PromiseFulfilledResult<EvaluateResult | undefined>).value);
    } finally {
      clearInterval(watchdog);
      clearTimeout(grace);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AbortError();
}

/**
 * The run's shared memory, with the initial parameters and state given, or Glorot-uniform kernels
 * and zero biases drawn from the seed, as Keras initialises them.
 */
function createSharedState(options: SessionOptions, rng: Rng, faults: number): SharedState {
  const { data, config, network, initial } = options;
  const optimizer = createOptimizerMemory(network.paramCount, config.workers);
  const state = new Float32Array(new SharedArrayBuffer(network.stateCount * 4));
  if (initial !== undefined) {
    optimizer.params.set(initial.params);
    state.set(initial.state);
  } else {
    initializeParams(network, optimizer.params, state, rng);
  }
  return {
    train: sharedSplit(data.train),
    test: sharedSplit(data.test),
    model: {
      layers: network.layers.map((layer) => layer.spec),
      height: data.height,
      width: data.width,
      channels: channelsOf(data),
      classes: network.classes,
    },
    optimizer,
    state,
    collective: createCollectiveMemory(config.workers, network.collectiveLength),
    stats: new Float64Array(new SharedArrayBuffer(config.workers * STATS_WORDS * 8)),
    timings: new Float64Array(new SharedArrayBuffer(config.workers * TIMING_WORDS * 8)),
    order: new Int32Array(new SharedArrayBuffer(data.train.count * 4)),
    control: new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4)),
    faultsInjected: new Int32Array(new SharedArrayBuffer(Math.max(1, faults) * 4)),
  };
}
