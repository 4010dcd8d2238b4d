import type * as tf from '@tensorflow/tfjs';
import { Piscina } from 'piscina';
import { checkSplit, type Dataset, sharedSplit } from '../data/dataset.js';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { AbortError, OptionError } from '../errors.js';
import {
  CONTROL_WORDS, CTRL_STEPS_DONE, type EvaluateResult, paramLayout, requestStop, shardOf, type SharedState,
  STATS_CORRECT, STATS_LOSS, STATS_SAMPLES, STATS_WORDS, type Task,
} from '../protocol.js';
import { StoppedError } from '../worker/barrier.js';
import { toLayersModel } from './model.js';
import { type BatchProgress, type EpochLog, resolveOptions, type TrainConfig, type TrainOptions } from './options.js';
import { Rng } from './rng.js';

export interface TrainResult {
  /** The trained model, ready for `predict` and `save`. */
  readonly model: tf.LayersModel;
  readonly history: readonly EpochLog[];
  /** After the last epoch. */
  readonly testLoss: number;
  readonly testAccuracy: number;
  /** From the call to the trained model, data loading included. */
  readonly wallSeconds: number;
  readonly config: TrainConfig;
}

const WORKER_FILE = new URL('../worker/worker.js', import.meta.url).href;

/**
 * Trains a dense classifier data-parallel: `workers` threads each compute the gradient of their
 * shard of every global batch, the gradients are all-reduced into the global batch's mean, and Adam
 * updates the parameters, which live once, in shared memory. After each epoch the test split is
 * evaluated, sharded across the same workers.
 */
export async function train(options: TrainOptions = {}): Promise<TrainResult> {
  const started = performance.now();
  const config = resolveOptions(options);
  const { signal } = options;
  throwIfAborted(signal);
  const data = options.data ?? (await loadFashionMnist({ dir: options.dataDir }));
  // One generator, in a fixed order: the initial weights, then each epoch's shuffle.
  const rng = new Rng(config.seed);
  const shared = createSharedState(data, config, rng);
  throwIfAborted(signal);

  const pool = new Piscina<Task, EvaluateResult | undefined>({
    filename: WORKER_FILE,
    minThreads: config.workers,
    maxThreads: config.workers,
    // Workers keep tfjs, its wasm module and their buffers between tasks; none may exit when idle.
    idleTimeout: Infinity,
  });
  const history: EpochLog[] = [];
  try {
    const steps = Math.ceil(data.train.count / config.batchSize);
    for (let epoch = 1; epoch <= config.epochs; epoch++) {
      const epochStarted = performance.now();
      shared.order.forEach((_, i, order) => (order[i] = i));
      rng.shuffle(shared.order);
      shared.stats.fill(0);
      Atomics.store(shared.control, CTRL_STEPS_DONE, 0);
      const tasks: Task[] = Array.from({ length: config.workers }, (_, rank) => ({
        kind: 'epoch', shared, rank, workers: config.workers, batchSize: config.batchSize,
        firstStep: 0, endStep: steps, adamStepsBefore: (epoch - 1) * steps, adam: config.adam,
        schedule: config.schedule, totalSteps: config.epochs * steps,
      }));
      const report = () => options.onBatchEnd?.(progressOf(shared, epoch, steps, epochStarted));
      const timer = options.onBatchEnd ? setInterval(report, config.progressIntervalMs) : undefined;
      try {
        await runTogether(pool, tasks, shared.control, signal);
      } finally {
        clearInterval(timer);
      }
      report();
      const { loss, accuracy } = progressOf(shared, epoch, steps, epochStarted);
      const test = await evaluate(pool, shared, config.workers, signal);
      const log: EpochLog = { epoch, loss, accuracy, ...test, seconds: (performance.now() - epochStarted) / 1000 };
      history.push(log);
      await options.onEpochEnd?.(log);
    }
  } finally {
    await pool.destroy();
  }
  const last = history[history.length - 1];
  const model = await toLayersModel(shared.params, { height: data.height, width: data.width, sizes: shared.sizes });
  const { progressIntervalMs: _, ...recorded } = config;
  return {
    model, history, testLoss: last.testLoss, testAccuracy: last.testAccuracy,
    wallSeconds: (performance.now() - started) / 1000, config: recorded,
  };
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
  const floats = (length: number) => new Float32Array(new SharedArrayBuffer(length * 4));
  const params = floats(count);
  for (const layer of layers) {
    const limit = Math.sqrt(6 / (layer.inputs + layer.outputs));
    for (let i = layer.weightOffset; i < layer.biasOffset; i++) params[i] = (2 * rng.next() - 1) * limit;
  }
  return {
    train: sharedSplit(data.train),
    test: sharedSplit(data.test),
    sizes,
    params,
    adamM: floats(count),
    adamV: floats(count),
    grads: floats(count * config.workers),
    stats: new Float64Array(new SharedArrayBuffer(config.workers * STATS_WORDS * 8)),
    order: new Int32Array(new SharedArrayBuffer(data.train.count * 4)),
    control: new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4)),
  };
}

/**
 * Runs one task per worker, all at once: epoch tasks wait for each other at barriers, so they must
 * all be running. If one fails, or the caller aborts, the others are stopped at their next barrier;
 * the promise rejects with the first real error (or an AbortError), never hangs.
 */
async function runTogether(pool: Piscina<Task, EvaluateResult | undefined>, tasks: Task[], control: Int32Array, signal?: AbortSignal): Promise<(EvaluateResult | undefined)[]> {
  const onAbort = () => requestStop(control);
  signal?.addEventListener('abort', onAbort);
  try {
    const settled = await Promise.allSettled(
      tasks.map((task) =>
        pool.run(task).catch((error: unknown) => {
          requestStop(control);
          throw error;
        }),
      ),
    );
    throwIfAborted(signal);
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as Error] : []));
    if (failures.length > 0) {
      const cause = failures.find((e) => !(e instanceof Error && e.name === StoppedError.name)) ?? failures[0];
      throw new Error(`a worker failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    return settled.map((s) => (s as PromiseFulfilledResult<EvaluateResult | undefined>).value);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

async function evaluate(pool: Piscina<Task, EvaluateResult | undefined>, shared: SharedState, workers: number, signal?: AbortSignal) {
  const tasks: Task[] = Array.from({ length: workers }, (_, rank) => {
    const [start, end] = shardOf(0, shared.test.count, rank, workers);
    return { kind: 'evaluate', shared, start, end };
  });
  const results = (await runTogether(pool, tasks, shared.control, signal)) as EvaluateResult[];
  const lossSum = results.reduce((sum, r) => sum + r.lossSum, 0);
  const correct = results.reduce((sum, r) => sum + r.correct, 0);
  return { testLoss: lossSum / shared.test.count, testAccuracy: correct / shared.test.count };
}

function progressOf(shared: SharedState, epoch: number, steps: number, started: number): BatchProgress {
  let loss = 0;
  let correct = 0;
  let samples = 0;
  for (let base = 0; base < shared.stats.length; base += STATS_WORDS) {
    loss += shared.stats[base + STATS_LOSS];
    correct += shared.stats[base + STATS_CORRECT];
    samples += shared.stats[base + STATS_SAMPLES];
  }
  return {
    epoch, steps, step: Atomics.load(shared.control, CTRL_STEPS_DONE),
    loss: samples > 0 ? loss / samples : NaN,
    accuracy: samples > 0 ? correct / samples : NaN,
    seconds: (performance.now() - started) / 1000,
  };
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AbortError();
}
