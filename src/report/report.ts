import type * as tf from '@tensorflow/tfjs';
import { mkdir } from 'node:fs/promises';
import type { EpochLog } from '../coordinator/config.js';
import { type OutputFile, writeFilesAtomically } from '../files.js';
import type { Split } from '../data/dataset.js';
import { drawConfusionMatrix, drawLearningCurves } from './charts.js';
import { type Classification, classify, perClassTable } from './classification.js';
import { drawImageGrid } from './image-grid.js';
import { predictClasses, predictionGrid } from './predictions.js';

const REPORT_FILES = {
  predictions: 'predictions.png',
  confusion: 'confusion-matrix.png',
  curves: 'learning-curves.png',
  json: 'report.json',
} as const;

export interface ReportOptions {
  readonly model: tf.LayersModel;
  readonly test: Split;
  readonly height: number;
  readonly width: number;
  /** @default 1 */
  readonly channels?: number;
  /** Grey images drawn dark on white, as the tutorial draws Fashion-MNIST (see GridImages). @default true */
  readonly greyAsInk?: boolean;
  readonly classNames: readonly string[];
  /** Training history, for the learning curves; without it there are none. */
  readonly history?: readonly EpochLog[];
  /** Chooses the grid's images. */
  readonly seed: number;
}

export interface Report {
  readonly classification: Classification;
  /** Test indices shown in the grid, and how many of them the model got wrong. */
  readonly gridIndices: number[];
  readonly gridWrong: number;
  readonly table: string;
  /** The pictures and report.json, in the order they are written. */
  readonly files: OutputFile[];
}

/**
 * Pictures of what the model does on the test split, drawn in memory: 100 random test images with
 * their predicted class (mistakes in red, with the true class), the confusion matrix, the learning
 * curves, and report.json with the numbers behind them.
 */
export function drawReport(options: ReportOptions): Report {
  const { model, test, height, width, classNames, channels = 1 } = options;
  const predicted = predictClasses(model, test, height, width, channels);
  const classification = classify(predicted, test.labels, classNames.length);
  const { indices: gridIndices, items } = predictionGrid({
    predicted,
    test,
    pixels: height * width * channels,
    classNames,
    seed: options.seed,
  });
  const gridWrong = items.filter((item) => item.red).length;
  const grid = drawImageGrid(items, { columns: 10, width, height, channels, greyAsInk: options.greyAsInk });
  const files: OutputFile[] = [
    { name: REPORT_FILES.predictions, data: [grid.png] },
    { name: REPORT_FILES.confusion, data: [drawConfusionMatrix(classification, classNames)] },
  ];
  if (options.history !== undefined && options.history.length > 0) {
    files.push({ name: REPORT_FILES.curves, data: [drawLearningCurves(options.history)] });
  }
  const json = {
    accuracy: classification.accuracy,
    classNames,
    confusionMatrix: classification.matrix,
    perClass: classification.perClass,
    grid: { seed: options.seed, indices: gridIndices, wrong: gridWrong },
  };
  files.push({ name: REPORT_FILES.json, data: `${JSON.stringify(json)}\n` });
  return { classification, gridIndices, gridWrong, table: perClassTable(classification, classNames), files };
}

/**
 * `drawReport`, written into `dir`, each file renamed into place as the model is: a failure (a full
 * disk) is a SaveError that says what was saved, and leaves no file half written. `dir` may be a
 * model directory from elsewhere, and a symbolic link planted there under one of these names is
 * replaced, never written through.
 */
export async function writeReport(options: ReportOptions & { readonly dir: string }): Promise<Report> {
  const report = drawReport(options);
  await mkdir(options.dir, { recursive: true });
  writeFilesAtomically(options.dir, report.files);
  return report;
}
