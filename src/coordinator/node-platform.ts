import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { Dataset } from '../data/dataset.js';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { isImageFolder, loadImageFolder } from '../data/image-folder.js';
import type { Fault } from '../protocol.js';
import { checkCheckpointDir, writeCheckpoint } from './checkpoint.js';
import type { TrainOptions } from './options.js';
import type { Platform } from './platform.js';
import type { Session } from './session.js';
import { createSessionOn, trainOn, type TrainResult } from './trainer.js';

const WORKER_FILE = new URL('../worker/worker.js', import.meta.url).href;

/**
 * The trainer in Node: Piscina's worker threads, Fashion-MNIST found on disk (or the folder of
 * pictures `dataDir` names), checkpoints on disk.
 */
export const nodePlatform: Platform = {
  cores: availableParallelism(),
  createPool: (workers) =>
    new Piscina({
      filename: WORKER_FILE,
      minThreads: workers,
      maxThreads: workers,
      // Workers keep tfjs, its wasm module and their buffers between tasks; none may exit when idle.
      idleTimeout: Infinity,
    }),
  loadData: (dir) => (dir !== undefined && isImageFolder(dir) ? loadImageFolder({ dir }) : loadFashionMnist({ dir })),
  checkCheckpointDir,
  writeCheckpoint,
};

/**
 * Trains a classifier data-parallel on worker threads: `workers` threads each compute the gradient
 * of their shard of every global batch, the gradients are all-reduced into the global batch's mean,
 * and Adam updates the parameters, which live once, in shared memory. After each epoch the test
 * split is evaluated, sharded across the same workers.
 */
export function train(options: TrainOptions = {}): Promise<TrainResult> {
  return trainOn(nodePlatform, options);
}

/**
 * `train`, with failures injected into the workers: for the tests of fault handling only, and not
 * part of the package's entry point.
 */
export function trainWithFaults(options: TrainOptions, faults: readonly Fault[]): Promise<TrainResult> {
  return trainOn(nodePlatform, options, faults);
}

/** A Session for `options` on `data`, as `train` makes one, for benchmarks and tests that drive the steps themselves. */
export function createSession(data: Dataset, options: TrainOptions = {}): Session {
  return createSessionOn(nodePlatform, data, options);
}
