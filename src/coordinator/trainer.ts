import type * as tf from '@tensorflow/tfjs';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { DataError, InterruptedError, NonFiniteError, OptionError, WorkerError } from '../errors.js';
import { paramLayout } from '../protocol.js';
import { writeCheckpoint } from './checkpoint.js';
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
  const { resume } = options;
  if (resume !== undefined) {
    const given = TRAINING_SETTINGS.filter((name) => options[name] !== undefined);
    if (given.length > 0)
      throw new OptionError(`a resumed run takes its settings from the checkpoint; drop ${given.join(', ')}`);
  }
  const resolved = resolveOptions(resume === undefined ? options : { ...options, ...settingsOf(resume.config) });
  const { progressIntervalMs, maxRetries, stepTimeoutMs, checkpointEvery, ...config } = resolved;
  const { signal, interrupt, checkpointDir } = options;
  throwIfAborted(signal);
  const data = options.data ?? (await loadFashionMnist({ dir: options.dataDir }));
  throwIfAborted(signal);
  if (resume !== undefined) {
    const params = paramLayout([data.height * data.width, ...config.hidden, data.classNames.length]).count;
    if (resume.trainCount !== data.train.count || resume.state.params.length !== params) {
      throw new DataError(
        `the checkpoint was made on ${resume.trainCount} training images and ${resume.state.params.length} parameters; resume it with the same data and model`,
      );
    }
  }
  const session = new Session(data, config, options.faults);
  if (resume !== undefined) session.resume(resume.state);
  const steps = session.stepsPerEpoch;
  const history: EpochLog[] = [...(resume?.history ?? [])];
  options.onLog?.(
    `${resume === undefined ? 'Training' : `Resuming after epoch ${resume.epochsDone}, step ${resume.state.stepsDone}:`} on ${data.train.count} images ` +
      `with ${config.workers} worker${config.workers > 1 ? 's' : ''}: hidden ${config.hidden.join(',')}, global batch ${config.batchSize}, ` +
      `Adam lr ${config.adam.learningRate} (${config.schedule}), seed ${config.seed}`,
  );
  /** Saves the run as it stands between steps; `epochsDone` epochs are finished and evaluated. */
  const checkpoint = async (epochsDone: number): Promise<string | undefined> =>
    checkpointDir === undefined
      ? undefined
      : writeCheckpoint(checkpointDir, {
          config,
          trainCount: data.train.count,
          epochsDone,
          history,
          state: session.state(),
        });
  try {
    for (let epoch = (resume?.epochsDone ?? 0) + 1; epoch <= config.epochs; epoch++) {
      const epochStarted = performance.now();
      const progress = (): BatchProgress => {
        const { lossSum, correct, samples } = session.epochTotals();
        return {
          epoch,
          steps,
          step: session.stepsDone(),
          loss: lossSum / samples,
          accuracy: correct / samples,
          seconds: (performance.now() - epochStarted) / 1000,
        };
      };
      const report = () => options.onBatchEnd?.(progress());
      let step = session.stepsDone();
      if (step === 0) session.beginEpoch();
      const timer = options.onBatchEnd ? setInterval(report, progressIntervalMs) : undefined;
      try {
        while (step < steps) {
          step += await runChunk(session, step, Math.min(steps, step + CHUNK_STEPS), {
            signal,
            interrupt,
            maxRetries,
            stepTimeoutMs,
            epoch,
            onLog: options.onLog,
          });
          if (interrupt?.aborted) {
            throw new InterruptedError({ epoch, step, checkpoint: await checkpoint(epoch - 1) });
          }
        }
      } finally {
        clearInterval(timer);
      }
      report();
      const { loss, accuracy } = progress();
      const test = await session.evaluate(signal);
      const log: EpochLog = { epoch, loss, accuracy, ...test, seconds: (performance.now() - epochStarted) / 1000 };
      history.push(log);
      await options.onEpochEnd?.(log);
      session.endEpoch();
      if (interrupt?.aborted && epoch < config.epochs) {
        throw new InterruptedError({ epoch: epoch + 1, step: 0, checkpoint: await checkpoint(epoch) });
      }
      if (checkpointEvery > 0 && epoch % checkpointEvery === 0) await checkpoint(epoch);
    }
  } finally {
    await session.close();
  }
  if (!session.shared.optimizer.params.every(Number.isFinite)) {
    throw new NonFiniteError(
      'training diverged: the parameters are NaN or infinite; no model was saved. Lower the learning rate (--lr)',
    );
  }
  const last = history[history.length - 1];
  options.onLog?.(`Test accuracy: ${last.testAccuracy.toFixed(4)}`);
  options.onLog?.(`Test loss: ${last.testLoss.toFixed(4)}`);
  const model = await toLayersModel(session.shared.optimizer.params, {
    height: data.height,
    width: data.width,
    sizes: session.shared.sizes,
  });
  return {
    model,
    history,
    testLoss: last.testLoss,
    testAccuracy: last.testAccuracy,
    wallSeconds: (performance.now() - started) / 1000,
    config,
  };
}

/**
 * Steps per chunk: the state is copied (1.2 MB) at the start of each, so that a worker failure
 * costs at most this many steps, run again.
 */
const CHUNK_STEPS = 200;

/** The options that define a run, which a resumed run takes from its checkpoint. */
const TRAINING_SETTINGS = ['workers', 'epochs', 'batchSize', 'learningRate', 'schedule', 'seed', 'hidden'] as const;

function settingsOf(config: TrainConfig): Pick<TrainOptions, (typeof TRAINING_SETTINGS)[number]> {
  const { workers, epochs, batchSize, seed, hidden, schedule } = config;
  return { workers, epochs, batchSize, seed, hidden, schedule, learningRate: config.adam.learningRate };
}

interface ChunkOptions {
  readonly signal?: AbortSignal;
  readonly interrupt?: AbortSignal;
  readonly maxRetries: number;
  readonly stepTimeoutMs: number;
  readonly epoch: number;
  readonly onLog?: (line: string) => void;
}

/**
 * Runs steps `[first, end)`. When a worker throws, exits or hangs, every worker is replaced, the
 * state goes back to the chunk's start and the chunk runs again: the result is bit for bit that of
 * a run without the failure. `maxRetries` failures in a row end the run with the last one.
 */
async function runChunk(session: Session, first: number, end: number, options: ChunkOptions): Promise<number> {
  const snapshot = session.snapshot();
  for (let failures = 1; ; failures++) {
    try {
      return await session.runSteps(first, end, {
        signal: options.signal,
        stop: options.interrupt,
        stepTimeoutMs: options.stepTimeoutMs,
      });
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      if (failures > options.maxRetries) {
        throw new WorkerError(`epoch ${options.epoch}: ${error.message} (${failures} failures in a row; giving up)`, {
          cause: error,
        });
      }
      options.onLog?.(
        `epoch ${options.epoch}: ${error.message}; restarting the workers and running steps ${first + 1}-${end} again (retry ${failures} of ${options.maxRetries})`,
      );
      await session.restore(snapshot);
    }
  }
}
