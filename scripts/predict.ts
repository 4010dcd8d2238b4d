/**
 * `npm run predict`: what a saved model does. With --image, classify your own pictures; without,
 * pictures of its answers on the test set (predictions, confusion matrix, learning curves).
 */
import type * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel } from '../src/model/files.js';
import type { EpochLog } from '../src/coordinator/config.js';
import { checkNumber } from '../src/coordinator/options.js';
import { FASHION_MNIST_CLASSES, loadFashionMnist } from '../src/data/fashion-mnist.js';
import { parseFlags } from '../src/cli/flags.js';
import { DataError, isUserError, OptionError } from '../src/errors.js';
import { findFileInside, readFileInside } from '../src/files.js';
import { DAMAGED, parseJson } from '../src/model/model-json.js';
import { greyPng, preprocessImage } from '../src/report/preprocess.js';
import { topClasses } from '../src/report/predictions.js';
import { writeReport } from '../src/report/report.js';

const METRICS_JSON = 'metrics.json';
/** 100,000 epochs (the most train accepts) take about 20 MB of metrics.json. */
const MAX_METRICS_BYTES = 64 << 20;
const EPOCH_FIELDS = ['epoch', 'loss', 'accuracy', 'testLoss', 'testAccuracy', 'seconds'] as const;

const USAGE = `Usage: npm run predict -- --model DIR [--image FILE [FILE...]] [flags]

  --model DIR           a directory written by npm run train (model.json, weights.bin)
  --image FILE...       PNG or JPEG pictures to classify (any size, colour or grey); prints the top 3
  --save-preprocessed   with --image: also write the 28x28 image the model saw, as FILE.28x28.png
Without --image, writes predictions.png (100 random test images), confusion-matrix.png,
learning-curves.png (when the directory has metrics.json) and report.json, and prints precision and
recall per class:
  --data DIR            where Fashion-MNIST is (as for npm run train)
  --out DIR             where the pictures go (default: the --model directory)
  --seed N              chooses the 100 images (default: 1)`;

async function main(): Promise<void> {
  const { values, positionals } = parseFlags(
    process.argv.slice(2),
    {
      model: { type: 'string' },
      image: { type: 'string', multiple: true },
      'save-preprocessed': { type: 'boolean' },
      data: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    { positionals: true },
  );
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.model === undefined)
    throw new OptionError('--model DIR is required: a directory written by npm run train');
  // `--image a.png b.png`: the images after the first come as positionals.
  const images = [...(values.image ?? []), ...positionals];
  if (positionals.length > 0 && values.image === undefined)
    throw new OptionError(`unexpected argument ${positionals[0]} (see --help)`);
  if (!existsSync(join(values.model, 'model.json'))) {
    throw new DataError(`--model "${values.model}" has no model.json; pass a directory written by npm run train`);
  }
  const model = await loadModel(values.model);
  checkModelShape(model, values.model);
  if (images.length > 0) {
    await classifyImages(model, images, values['save-preprocessed'] === true);
    return;
  }
  const seed =
    values.seed === undefined ? 1 : checkNumber('seed', Number(values.seed), '--seed', JSON.stringify(values.seed));
  const history = await readHistory(values.model);
  const data = await loadFashionMnist({ dir: values.data });
  const out = values.out ?? values.model;
  const report = await writeReport({
    model,
    test: data.test,
    height: data.height,
    width: data.width,
    classNames: data.classNames,
    history,
    seed,
    dir: out,
  });
  console.log(report.table);
  console.log(
    `Wrote ${report.files.map((f) => join(out, f.name)).join(', ')} (${report.gridWrong} of the ${report.gridIndices.length} pictured are wrong)`,
  );
}

/**
 * The model must take 28x28 images (with a channel axis or without: modelInput adds it) and give the
 * 10 classes: a model directory is input like any other.
 */
function checkModelShape(model: tf.LayersModel, dir: string): void {
  const input = String(model.inputs[0].shape);
  const output = String(model.outputs[0].shape);
  const images = [String([null, 28, 28]), String([null, 28, 28, 1])];
  if (!images.includes(input) || output !== String([null, FASHION_MNIST_CLASSES.length])) {
    const shape = (s: readonly (number | null)[]) => `[${s.slice(1).join(', ')}]`;
    throw new DataError(
      `${join(dir, 'model.json')}: the model takes inputs of shape ${shape(model.inputs[0].shape)} and gives ${shape(model.outputs[0].shape)}; ` +
        `predict needs 28x28 images in and the ${FASHION_MNIST_CLASSES.length} Fashion-MNIST classes out`,
    );
  }
}

/** The training history in the model directory's metrics.json, for the learning curves; none without one. */
async function readHistory(dir: string): Promise<EpochLog[] | undefined> {
  const path = join(dir, METRICS_JSON);
  const file = await findFileInside(dir, METRICS_JSON, path);
  if (file === undefined) return undefined;
  if (file.size > MAX_METRICS_BYTES) {
    throw new DataError(
      `${path}: ${file.size} bytes, more than the ${MAX_METRICS_BYTES} a metrics.json may have; ${DAMAGED}`,
    );
  }
  const bytes = new Uint8Array(file.size);
  await readFileInside(file, bytes);
  const metrics = parseJson(Buffer.from(bytes).toString('utf8'), path);
  const epochs = (metrics as { epochs?: unknown } | null)?.epochs;
  const isLog = (log: unknown) =>
    typeof log === 'object' &&
    log !== null &&
    EPOCH_FIELDS.every((field) => Number.isFinite((log as Record<string, unknown>)[field]));
  if (!Array.isArray(epochs) || !epochs.every(isLog)) {
    throw new DataError(`${path}: "epochs" is not a list of {${EPOCH_FIELDS.join(', ')}}; ${DAMAGED}`);
  }
  return epochs as EpochLog[];
}

async function classifyImages(model: tf.LayersModel, paths: string[], savePreprocessed: boolean): Promise<void> {
  const prepared = [];
  // Every file is checked before any is classified: one bad file, one error, nothing half done.
  for (const path of paths) prepared.push({ path, pixels: await preprocessImage(path) });
  for (const { path, pixels } of prepared) {
    const top = topClasses(model, pixels, 28);
    console.log(
      `${path}: ${top.map(({ classIndex, probability }) => `${FASHION_MNIST_CLASSES[classIndex]} ${(100 * probability).toFixed(1)}%`).join(', ')}`,
    );
    if (savePreprocessed) {
      const target = `${path}.28x28.png`;
      await writeFile(target, greyPng(pixels));
      console.log(`  wrote ${target}`);
    }
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
