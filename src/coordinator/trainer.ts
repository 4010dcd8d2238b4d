import type * as tf from '@tensorflow/tfjs';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { NonFiniteError } from '../errors.js';
import { toLayersModel } from './model.js';
import { type BatchProgress, type EpochLog, resolveOptions, type TrainConfig, type TrainOptions } from './options.js';
import { Session, throwIfAborted } from './session.js';

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

/**
 * Trains a dense classifier data-parallel: `workers` threads each compute the gradient of their
 * shard of every global batch, the gradients are all-reduced into the global batch's mean, and Adam
 * updates the parameters, which live once, in shared memory. After each epoch the test split is
 * evaluated, sharded across the same workers.
 */
export async function train(options: TrainOptions = {}): Promise<TrainResult> {
  const started = performance.now();
  const { progressIntervalMs, ...config } = resolveOptions(options);
  const { signal } = options;
  throwIfAborted(signal);
  const data = options.data ?? (await loadFashionMnist({ dir: options.dataDir }));
  throwIfAborted(signal);
  const session = new Session(data, config);
  const steps = session.stepsPerEpoch;
  options.onLog?.(
    `Training on ${data.train.count} images with ${config.workers} worker${config.workers > 1 ? 's' : ''}: ` +
      `hidden ${config.hidden.join(',')}, global batch ${config.batchSize}, ` +
      `Adam lr ${config.adam.learningRate} (${config.schedule}), seed ${config.seed}`,
  );
  const history: EpochLog[] = [];
  try {
    for (let epoch = 1; epoch <= config.epochs; epoch++) {
      const epochStarted = performance.now();
      const progress = (): BatchProgress => {
        const { lossSum, correct, samples } = session.epochTotals();
        return {
          epoch, steps, step: session.stepsDone(),
          loss: lossSum / samples, accuracy: correct / samples,
          seconds: (performance.now() - epochStarted) / 1000,
        };
      };
      const report = () => options.onBatchEnd?.(progress());
      session.beginEpoch();
      const timer = options.onBatchEnd ? setInterval(report, progressIntervalMs) : undefined;
      try {
        await session.runSteps(0, steps, signal);
      } finally {
        clearInterval(timer);
      }
      report();
      const { loss, accuracy } = progress();
      const test = await session.evaluate(signal);
      const log: EpochLog = { epoch, loss, accuracy, ...test, seconds: (performance.now() - epochStarted) / 1000 };
      history.push(log);
      await options.onEpochEnd?.(log);
    }
  } finally {
    await session.close();
  }
  if (!session.shared.optimizer.params.every(Number.isFinite)) {
    throw new NonFiniteError('training diverged: the parameters are NaN or infinite; no model was saved. Lower the learning rate (--lr)');
  }
  const last = history[history.length - 1];
  options.onLog?.(`Test accuracy: ${last.testAccuracy.toFixed(4)}`);
  options.onLog?.(`Test loss: ${last.testLoss.toFixed(4)}`);
  const model = await toLayersModel(session.shared.optimizer.params, { height: data.height, width: data.width, sizes: session.shared.sizes });
  return {
    model, history, testLoss: last.testLoss, testAccuracy: last.testAccuracy,
    wallSeconds: (performance.now() - started) / 1000, config,
  };
}
