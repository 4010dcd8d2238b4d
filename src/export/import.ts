import { availableParallelism } from 'node:os';
import { writeCheckpoint } from '../coordinator/checkpoint.js';
import { nodePlatform } from '../coordinator/node-platform.js';
import { defaultWorkers } from '../coordinator/options.js';
import { Session } from '../coordinator/session.js';
import { dataSha256 } from '../data/data-hash.js';
import { channelsOf, type Dataset } from '../data/dataset.js';
import { DataError } from '../errors.js';
import { writeFilesAtomically } from '../files.js';
import { saveModel } from '../model/files.js';
import { toLayersModel } from '../model/keras.js';
import type { PyTorchRun } from './run-folder.js';

/**
 * `npm run import`: a PyTorch run folder (exported, then trained by train_ddp.py) back as a run
 * directory of ours: model.json + weights.bin for `tf.loadLayersModel` and `npm run predict`,
 * metrics.json with the history and the test scores, and, when the folder has Adam's state,
 * checkpoint.bin, from which `npm run train -- --resume` continues the run. The model records what
 * the run's did (class names, image size and channels, how pictures were fitted), so that
 * `npm run predict` and the pictures work on it as on the original.
 */

export interface ImportOptions {
  /** The folder, read and checked by readPyTorchRun (run.json, model.safetensors, checkpoint.safetensors). */
  readonly run: PyTorchRun;
  /** Where it was read from, recorded in metrics.json. */
  readonly from: string;
  /** Where the run directory goes (it must exist; the command line makes it). */
  readonly out: string;
  /** The data to evaluate the model on: the run's own, when the folder recorded its hash. */
  readonly data: Dataset;
  /** The data's directory, recorded in metrics.json as `npm run train` records it (for a run on pictures, their folder is). */
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
  const [height, width, channels] = network.input;
  if (
    data.height !== height ||
    data.width !== width ||
    channelsOf(data) !== channels ||
    data.classNames.length !== network.classes
  ) {
    throw new DataError(
      `${options.from}: the model takes ${height}x${width}x${channels} images of ${network.classes} classes, ` +
        `and the data has ${data.height}x${data.width}x${channelsOf(data)} images of ${data.classNames.length}; pass --data with the run's own`,
    );
  }
  const sha256 = dataSha256(data);
  if (run.data.sha256 !== undefined && sha256 !== run.data.sha256) {
    throw new DataError(
      `${options.dataDir ?? 'the data'} is not the run's (sha256 ${sha256.slice(0, 12)}…, and ${options.from}/run.json has ${run.data.sha256.slice(0, 12)}…): pass --data with the files it was trained on`,
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
  const { metadata } = run.data;
  if (metadata !== undefined) model.setUserDefinedMetadata(metadata);
  try {
    await saveModel(model, options.out);
  } finally {
    model.dispose();
  }
  const metrics = {
    ...test,
    // As npm run train records them: where the data is, its hash, and what the model was trained on.
    config: {
      ...config,
      learningRate: config.adam.learningRate,
      data: run.data.pictures?.folder ?? options.dataDir ?? null,
      dataSha256: sha256,
      classNames: metadata?.classNames ?? data.classNames,
      image: { height, width, channels },
      imageFolder: metadata?.imageFolder ?? null,
    },
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
