import * as tf from '@tensorflow/tfjs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { EpochLog } from '../coordinator/config.js';
import { writeFileAtomically } from '../files.js';
import { modelInput } from '../model/keras.js';
import { Rng } from '../rng.js';
import type { Split } from '../data/dataset.js';
import { drawConfusionMatrix, drawLearningCurves } from './charts.js';
import { type Classification, classify, perClassTable } from './classification.js';
import { drawImageGrid } from './image-grid.js';

const REPORT_FILES = {
  predictions: 'predictions.png',
  confusion: 'confusion-matrix.png',
  curves: 'learning-curves.png',
  json: 'report.json',
} as const;

/** Images in the prediction grid, as in the tutorial's last figure. */
const GRID_IMAGES = 100;

export interface ReportOptions {
  readonly model: tf.LayersModel;
  readonly test: Split;
  readonly height: number;
  readonly width: number;
  readonly classNames: readonly string[];
  /** Training history, for the learning curves; without it there are none. */
  readonly history?: readonly EpochLog[];
  /** Chooses the grid's images. */
  readonly seed: number;
  readonly dir: string;
}

export interface Report {
  readonly classification: Classification;
  /** Test indices shown in the grid, and how many of them the model got wrong. */
  readonly gridIndices: number[];
  readonly gridWrong: number;
  readonly table: string;
  readonly files: string[];
}

/** The model's class for every image of a split: predict in batches of 1000 on the main thread. */
function predictClasses(model: tf.LayersModel, split: Split, height: number, width: number): Int32Array {
  return tf.tidy(() => {
    const pixels = tf.tensor3d(split.images, [split.count, height, width], 'float32');
    const x = modelInput(model, split.images instanceof Uint8Array ? tf.div(pixels, 255) : pixels);
    // A large batch: tfjs-layers slices the input per batch, and each slice costs ~15 ms on wasm.
    return (model.predict(x, { batchSize: 1000 }) as tf.Tensor).argMax(1).dataSync() as Int32Array;
  });
}

/**
 * Pictures of what the model does on the test split, written into `dir`: 100 random test images
 * with their predicted class (mistakes in red, with the true class), the confusion matrix, the
 * learning curves, and report.json with the numbers behind them. Each file is renamed into place:
 * `dir` may be a model directory from elsewhere, and a symbolic link planted there under one of
 * these names is replaced, never written through.
 */
export async function writeReport(options: ReportOptions): Promise<Report> {
  const { model, test, height, width, classNames, dir } = options;
  const predicted = predictClasses(model, test, height, width);
  const classification = classify(predicted, test.labels, classNames.length);
  const order = Int32Array.from({ length: test.count }, (_, i) => i);
  new Rng(options.seed).shuffle(order);
  const gridIndices = Array.from(order.subarray(0, Math.min(GRID_IMAGES, test.count)));
  const pixels = height * width;
  const items = gridIndices.map((i) => {
    const wrong = predicted[i] !== test.labels[i];
    const image =
      test.images instanceof Uint8Array
        ? test.images.subarray(i * pixels, (i + 1) * pixels)
        : Uint8Array.from(test.images.subarray(i * pixels, (i + 1) * pixels), (v) =>
            Math.round(Math.min(1, Math.max(0, v)) * 255),
          );
    return {
      pixels: image,
      red: wrong,
      caption: wrong ? [classNames[predicted[i]], `true: ${classNames[test.labels[i]]}`] : [classNames[predicted[i]]],
    };
  });
  const gridWrong = items.filter((item) => item.red).length;
  await mkdir(dir, { recursive: true });
  const files: string[] = [REPORT_FILES.predictions, REPORT_FILES.confusion];
  writeFileAtomically(join(dir, REPORT_FILES.predictions), [drawImageGrid(items, { columns: 10, side: width }).png]);
  writeFileAtomically(join(dir, REPORT_FILES.confusion), [drawConfusionMatrix(classification, classNames)]);
  if (options.history !== undefined && options.history.length > 0) {
    writeFileAtomically(join(dir, REPORT_FILES.curves), [drawLearningCurves(options.history)]);
    files.push(REPORT_FILES.curves);
  }
  const json = {
    accuracy: classification.accuracy,
    classNames,
    confusionMatrix: classification.matrix,
    perClass: classification.perClass,
    grid: { seed: options.seed, indices: gridIndices, wrong: gridWrong },
  };
  writeFileAtomically(join(dir, REPORT_FILES.json), `${JSON.stringify(json)}\n`);
  files.push(REPORT_FILES.json);
  return { classification, gridIndices, gridWrong, table: perClassTable(classification, classNames), files };
}
