import type { TrainOptions } from '../coordinator/options.js';
import type { Platform } from '../coordinator/platform.js';
import { trainOn, type TrainResult } from '../coordinator/trainer.js';
import type { Dataset } from '../data/dataset.js';
import { OptionError } from '../errors.js';
import { WebWorkerPool } from './web-worker-pool.js';

/** The worker's script, which the build (web/build.ts) writes next to the page's. */
const WORKER_URL = new URL('./worker.js', import.meta.url);

function noDirectories(): never {
  throw new OptionError('a browser has no directory to write checkpoints into');
}

/** The trainer in a browser: Web Workers, one per core by default; the data is the page's to give. */
export const browserPlatform: Platform = {
  cores: navigator.hardwareConcurrency,
  createPool: (workers) => new WebWorkerPool(WORKER_URL, workers),
  loadData: () => Promise.reject(new OptionError('in a browser, pass the data (see fetchFashionMnist)')),
  checkCheckpointDir: noDirectories,
  writeCheckpoint: noDirectories,
};

/** `train()`'s options that make sense in a page: no directories, and the data given. */
export type BrowserTrainOptions = Omit<TrainOptions, 'dataDir' | 'checkpointDir' | 'checkpointEvery' | 'resume'> & {
  readonly data: Dataset;
};

/**
 * Trains as `train()` does in Node, with the same step loop, shared memory, kernels, barriers and
 * evaluation, on Web Workers. Needs a cross-origin isolated page (SharedArrayBuffer).
 */
export function trainInBrowser(options: BrowserTrainOptions): Promise<TrainResult> {
  return trainOn(browserPlatform, options);
}
