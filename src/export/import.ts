import { availableParallelism } from 'node:os';
import { writeCheckpoint } from '../coordinator/checkpoint.js';
import { nodePlatform } from '../coordinator/node-platform.js';
import { defaultWorkers } from '../coordinator/options.js';
import { Session } from '../coordinator/session.js';
import type { Dataset } from '../data/dataset.js';
import { DataError } from '../errors.js';
import { writeFilesAtomically } from '../files.js';
import { saveModel } from '../model/files.js';
import { toLayersModel } from '../model/keras.js';
import type { PyTorchRun } from './run-folder.js';

/**
 * `npm run import`: a PyTorch run folder (exported, then trained by train_ddp.py) back as a run
 * directory of ours: model.json + weights.bin for `tf.loadLayersModel` and `npm run predict`,
 * metrics.json with the history and the test scores, and, when the folder has Adam's state,
 * checkpoint.bin, from which `npm run train -- --resume` continues the run.
 */

export interface ImportOptions {
  /** The folder, read and checked by readPyTorchRun (run.json, model.safetensors, checkpoint.safetensors). */
  readonly run: PyTorchRun;
  /** Where it was read from, recorded in metrics.json. */
  readonly from: string;
  /** Where the run directory goes (it must exist; the command line makes it). */
  readonly out: string;
  /** The data to evaluate the model on; its images must be the model's. */
  readonly data: Dataset;
  /** The data's directory, recorded in metrics.json as `npm run train` records it. */
  readonly dataDir?: string;
  /** Worker threads for the evaluation. @default one per core */
  readonly workers?: number;
}

export interface ImportResult {
  readonly testLoss: number;
  readonly testAccuracy: number;
  /** The files written into `out`, in order. */
  readonly files: readonly string[];
}

/** Writes the run into `options.out` as a run directory of ours, with the test scores of its model on `options.data`. */
export async function importPyTorch(options: ImportOptions): Promise<ImportResult> {
  const { run } = options;
  const { network, config } = run;
  const { data } = options;
  const [height, width] = network.input;
  if (data.height !== height || data.width !== width || data.classNames.length !== network.classes) {
    throw new DataError(
      `${options.from}: the model takes ${height}x${width} images of ${network.classes} classes, ` +
        `and the data has ${data.height}x${data.width} images of ${data.classNames.length}; pass --data with the run's own`,
    );
  }
  // The test scores as `npm run train` computes them: the same evaluation, on the same workers.
  const workers = options.workers ?? defaultWorkers(availableParallelism());
  const session = new Session({
    platform: nodePlatform,
    data,
    config: { ...config, workers },
    network,
    initial: { params: run.params, state: run.state },
  });
  let test: { testLoss: number; testAccuracy: number };
  try {
    test = await session.evaluate();
  } finally {
    await session.close();
  }
  const model = await toLayersModel(run.params, run.state, network);
  try {
    await saveModel(model, options.out);
  } finally {
    model.dispose();
  }
  const metrics = {
    ...test,
    config: { ...config, learningRate: config.adam.learningRate, data: options.dataDir ?? null },
    epochs: run.history,
    importedFrom: options.from,
  };
  writeFilesAtomically(options.out, [{ name: 'metrics.json', data: `${JSON.stringify(metrics, null, 2)}\n` }], {
    saved: ['model.json', 'weights.bin'],
  });
  const files = ['model.json', 'weights.bin', 'metrics.json'];
  if (run.checkpoint !== undefined) {
    writeCheckpoint(options.out, run.checkpoint);
    files.push('checkpoint.bin');
  }
  return { ...test, files };
}
