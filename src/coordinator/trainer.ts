import type * as tf from '@tensorflow/tfjs';
import { checkAugmentFits, formatAugment } from '../data/augment.js';
import { checkDataset, type Dataset } from '../data/dataset.js';
import { DataError, InterruptedError, NonFiniteError, OptionError, WorkerError } from '../errors.js';
import { importSequential, setWeights, toLayersModel } from '../model/keras.js';
import { modelMetadata } from '../model/metadata.js';
import { buildNetwork } from '../model/network.js';
import { formatLayers, presetLayers } from '../model/spec.js';
import type { Fault } from '../protocol.js';
import type { Checkpoint } from './config.js';
import type { BatchProgress, EpochLog, TrainConfig } from './config.js';
import { type ModelChoice, resolveOptions, type TrainOptions } from './options.js';
import type { Platform } from './platform.js';
import { Session, type SessionOptions, throwIfAborted } from './session.js';

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
 * Steps per chunk: one task per worker runs a chunk, and the state is copied (1.2 MB for the
 * tutorial's model) at the start of each, so that a worker failure costs at most this many steps,
 * run again.
 */
export const CHUNK_STEPS = 200;

/**
 * Trains a classifier data-parallel: `workers` threads each compute the gradient of their shard of
 * every global batch, the gradients are all-reduced into the global batch's mean, and Adam updates
 * the parameters, which live once, in shared memory. After each epoch the test split is evaluated,
 * sharded across the same workers. `platform` gives the threads (Piscina's in Node, Web Workers in a
 * browser); `faults` are failures to inject into the workers, for the tests of fault handling only.
 */
export async function trainOn(
  platform: Platform,
  options: TrainOptions,
  faults: readonly Fault[] = [],
): Promise<TrainResult> {
  const started = performance.now();
  const { resume } = options;
  if (resume !== undefined) {
    const given = RUN_SETTINGS.filter((name) => options[name] !== undefined);
    if (given.length > 0) {
      throw new OptionError(`a resumed run keeps the settings of its checkpoint; drop ${given.join(', ')}`);
    }
  }
  const resolved = resolveOptions(
    resume === undefined
      ? options
      : { ...options, ...settingsOf(resume.config), workers: options.workers ?? resume.config.workers },
    platform.cores,
  );
  const { progressIntervalMs, maxRetries, stepTimeoutMs, checkpointEvery, model: choice, ...settings } = resolved;
  const { signal, interrupt, checkpointDir } = options;
  throwIfAborted(signal);
  if (checkpointDir !== undefined) platform.checkCheckpointDir(checkpointDir);
  const data = options.data ?? (await platform.loadData(options.dataDir));
  throwIfAborted(signal);
  checkDataset(data);
  checkAugmentFits(settings.augment, data.height, data.width);
  const { network, initial } = placeResumable(choice, data, resume);
  const config: TrainConfig = { ...settings, model: formatLayers(network.layers.map((layer) => layer.spec)) };
  if (
    resume !== undefined &&
    (resume.trainCount !== data.train.count ||
      resume.params.length !== network.paramCount ||
      resume.state.length !== network.stateCount)
  ) {
    throw otherData(resume);
  }
  const session = new Session({ platform, data, config, network, initial, faults });
  if (resume !== undefined) session.resume(resume);
  const steps = session.stepsPerEpoch;
  const history: EpochLog[] = [...(resume?.history ?? [])];
  const retrying = (epoch: number, doing: string): RetryOptions => ({ maxRetries, epoch, doing, onLog: options.onLog });
  options.onLog?.(describeRun(config, data.train.count, resume));
  /** Saves the run as it stands between steps; `epochsDone` epochs are finished and evaluated. */
  const checkpoint = (epochsDone: number): string | undefined =>
    checkpointDir === undefined
      ? undefined
      : platform.writeCheckpoint(checkpointDir, {
          config,
          trainCount: data.train.count,
          epochsDone,
          history,
          ...session.state(),
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
      // Each step is reported at most once and in order: the timer skips a tick when no step ended.
      let reported = -1;
      const report = () => {
        const now = progress();
        if (now.step <= reported) return;
        reported = now.step;
        options.onBatchEnd?.(now);
      };
      let step = session.stepsDone();
      if (step === 0) session.beginEpoch();
      const timer = options.onBatchEnd ? setInterval(report, progressIntervalMs) : undefined;
      try {
        while (step < steps) {
          const end = Math.min(steps, step + CHUNK_STEPS);
          const first = step;
          step += await withRetries(session, retrying(epoch, `running steps ${first + 1}-${end}`), () =>
            session.runSteps(first, end, { signal, stop: interrupt, stepTimeoutMs }),
          );
          if (interrupt?.aborted) {
            throw new InterruptedError({ epoch, step, checkpoint: checkpoint(epoch - 1) });
          }
        }
      } finally {
        clearInterval(timer);
      }
      report();
      const { loss, accuracy } = progress();
      const test = await withRetries(session, retrying(epoch, 'evaluating'), () =>
        session.evaluate({ signal, stepTimeoutMs }),
      );
      const log: EpochLog = { epoch, loss, accuracy, ...test, seconds: (performance.now() - epochStarted) / 1000 };
      history.push(log);
      await options.onEpochEnd?.(log);
      session.endEpoch();
      if (interrupt?.aborted && epoch < config.epochs) {
        throw new InterruptedError({ epoch: epoch + 1, step: 0, checkpoint: checkpoint(epoch) });
      }
      if (checkpointEvery > 0 && epoch % checkpointEvery === 0) checkpoint(epoch);
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
  const params = session.shared.optimizer.params;
  const { state } = session.shared;
  let model: tf.LayersModel;
  if (choice.kind === 'sequential') {
    // As model.fit does: the caller's model itself ends up trained.
    setWeights(choice.model, params, state, network);
    model = choice.model;
  } else {
    model = await toLayersModel(params, state, network);
    // Saved in model.json: the class names, and how new pictures are to be prepared for it.
    model.setUserDefinedMetadata(modelMetadata(data));
  }
  return {
    model,
    history,
    testLoss: last.testLoss,
    testAccuracy: last.testAccuracy,
    wallSeconds: (performance.now() - started) / 1000,
    config,
  };
}

/** The options that define a run, which a resumed run takes from its checkpoint (all but `workers`). */
const RUN_SETTINGS = ['epochs', 'batchSize', 'learningRate', 'schedule', 'seed', 'model', 'hidden', 'augment'] as const;

function settingsOf(config: TrainConfig): TrainOptions {
  const { epochs, batchSize, seed, model, schedule, augment } = config;
  return { epochs, batchSize, seed, model, schedule, augment, learningRate: config.adam.learningRate };
}

/**
 * A Session for `options` on `data`, as `trainOn` makes one, for benchmarks and tests that drive the
 * steps themselves.
 */
export function createSessionOn(platform: Platform, data: Dataset, options: TrainOptions = {}): Session {
  checkDataset(data);
  const {
    model,
    progressIntervalMs: _,
    checkpointEvery: __,
    maxRetries: ___,
    stepTimeoutMs: ____,
    ...settings
  } = resolveOptions(options, platform.cores);
  checkAugmentFits(settings.augment, data.height, data.width);
  const { network, initial } = placeModel(model, data);
  const config: TrainConfig = { ...settings, model: formatLayers(network.layers.map((layer) => layer.spec)) };
  return new Session({ platform, data, config, network, initial });
}

/** The model's layers placed on the data's images, and, for a tf.Sequential, its weights to start from. */
function placeModel(choice: ModelChoice, data: Dataset): Pick<SessionOptions, 'network' | 'initial'> {
  const classes = data.classNames.length;
  switch (choice.kind) {
    case 'preset':
      return { network: buildNetwork(presetLayers(choice.preset, classes, choice.hidden), data, classes, 'model') };
    case 'layers':
      return { network: buildNetwork(choice.layers, data, classes, 'model') };
    case 'sequential': {
      const { network, params, state } = importSequential(choice.model, data, classes);
      return { network, initial: { params, state } };
    }
  }
}

/**
 * placeModel, for a run that may be resumed. A resumed run's model is its checkpoint's, which fitted
 * the checkpoint's data: when it does not fit these (another class count, say), the data is what
 * differs, and the error says so rather than blame a model the caller did not give.
 */
function placeResumable(
  choice: ModelChoice,
  data: Dataset,
  resume: Checkpoint | undefined,
): ReturnType<typeof placeModel> {
  try {
    return placeModel(choice, data);
  } catch (error) {
    throw resume !== undefined && error instanceof OptionError ? otherData(resume, error) : error;
  }
}

/** A checkpoint resumed on data other than its run's. */
function otherData(resume: Checkpoint, cause?: Error): DataError {
  return new DataError(
    `the checkpoint was made on ${resume.trainCount} training images and ${resume.params.length} parameters; ` +
      'resume it with the same data and model',
    { cause },
  );
}

/** The first line of a run's log: what it trains, how, and, when resumed, from where. */
function describeRun(config: TrainConfig, images: number, resume: Checkpoint | undefined): string {
  const workers = `${config.workers} worker${config.workers > 1 ? 's' : ''}`;
  const settings =
    `model ${config.model}, global batch ${config.batchSize}, ` +
    `Adam lr ${config.adam.learningRate} (${config.schedule}), seed ${config.seed}` +
    (config.augment === undefined ? '' : `, augment ${formatAugment(config.augment)}`);
  if (resume === undefined) return `Training on ${images} images with ${workers}: ${settings}`;
  const where = `Resuming after epoch ${resume.epochsDone}, step ${resume.stepsDone}: on ${images} images with ${workers}`;
  const before = resume.config.workers;
  const note =
    before === config.workers
      ? ''
      : ` (checkpointed with ${before}: the result equals an uninterrupted run's to float rounding, not bit for bit)`;
  return `${where}${note}: ${settings}`;
}

interface RetryOptions {
  readonly maxRetries: number;
  readonly epoch: number;
  /** What runs again after a failure, for the log: `running steps 1-200`, `evaluating`. */
  readonly doing: string;
  readonly onLog?: (line: string) => void;
}

/**
 * Runs a chunk of steps, or an evaluation. When a worker throws, exits or hangs, every worker is
 * replaced, the state goes back to what it was before and the work runs again: the result is bit
 * for bit that of a run without the failure. `maxRetries` failures in a row end the run with the
 * last one.
 */
async function withRetries<T>(session: Session, options: RetryOptions, run: () => Promise<T>): Promise<T> {
  const snapshot = session.snapshot();
  for (let failures = 1; ; failures++) {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      if (failures > options.maxRetries) {
        throw new WorkerError(`epoch ${options.epoch}: ${error.message} (${failures} failures in a row; giving up)`, {
          cause: error,
        });
      }
      options.onLog?.(
        `epoch ${options.epoch}: ${error.message}; restarting the workers and ${options.doing} again (retry ${failures} of ${options.maxRetries})`,
      );
      await session.restore(snapshot);
    }
  }
}
