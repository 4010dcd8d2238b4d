/**
 * `npm run predict`: what a saved model does. With --image, classify your own pictures; without,
 * pictures of its answers on the test set (predictions, confusion matrix, learning curves).
 */
import type * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IMAGE_FOLDER_FLAGS, loadData, parseImageFolderFlags } from '../src/cli/data.js';
import { parseFlags } from '../src/cli/flags.js';
import type { EpochLog } from '../src/coordinator/config.js';
import { checkNumber } from '../src/coordinator/options.js';
import { channelsOf } from '../src/data/dataset.js';
import { FASHION_MNIST_CLASSES } from '../src/data/fashion-mnist.js';
import { readPicture } from '../src/data/image-folder.js';
import { DataError, isUserError, OptionError } from '../src/errors.js';
import { findFileInside, readFileInside } from '../src/files.js';
import { loadModel } from '../src/model/files.js';
import { checkModelMetadata, type ModelMetadata } from '../src/model/metadata.js';
import { DAMAGED, parseJson } from '../src/model/model-json.js';
import { topClasses } from '../src/report/predictions.js';
import { imagePng, preprocessImage } from '../src/report/preprocess.js';
import { writeReport } from '../src/report/report.js';

const METRICS_JSON = 'metrics.json';
/** 100,000 epochs (the most train accepts) take about 20 MB of metrics.json. */
const MAX_METRICS_BYTES = 64 << 20;
const EPOCH_FIELDS = ['epoch', 'loss', 'accuracy', 'testLoss', 'testAccuracy', 'seconds'] as const;

const USAGE = `Usage: npm run predict -- --model DIR [--image FILE [FILE...]] [flags]

  --model DIR           a directory written by npm run train (model.json, weights.bin)
  --image FILE...       PNG, JPEG (or WebP) pictures to classify (any size, colour or grey); prints the top 3.
                        For a model trained on Fashion-MNIST, each becomes a 28x28 light object on
                        black; for one trained on a folder of pictures, each is fitted as its
                        training pictures were (size, channels, --resize)
  --save-preprocessed   with --image: also write the image the model saw, as FILE.HxW.png
Without --image, writes predictions.png (100 random test images), confusion-matrix.png,
learning-curves.png (when the directory has metrics.json) and report.json, and prints precision and
recall per class:
  --data DIR            where the test images are: Fashion-MNIST (as for npm run train), or the
                        folder of pictures the model was trained on (read as it was then)
  --out DIR             where the pictures go (default: the --model directory)
  --seed N              chooses the 100 images (default: 1)
  --cache DIR, --skip-bad-images
                        for a folder of pictures, as for npm run train`;

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
      cache: IMAGE_FOLDER_FLAGS.cache,
      'skip-bad-images': IMAGE_FOLDER_FLAGS['skip-bad-images'],
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
  const metadata = metadataOf(model, values.model);
  if (images.length > 0) {
    await classifyImages(model, metadata, images, values['save-preprocessed'] === true);
    return;
  }
  const seed =
    values.seed === undefined ? 1 : checkNumber('seed', Number(values.seed), '--seed', JSON.stringify(values.seed));
  const history = await readHistory(values.model);
  const folder = metadata.imageFolder;
  const { data, summary } = await loadData(
    values.data,
    {
      ...parseImageFolderFlags({ cache: values.cache, 'skip-bad-images': values['skip-bad-images'] }),
      // A folder of pictures is read as the model's training read it.
      ...(folder === undefined
        ? {}
        : {
            imageSize: metadata.image,
            channels: metadata.image.channels as 1 | 3,
            resize: folder.resize,
            validationSplit: folder.validationSplit?.fraction,
          }),
    },
    folder?.validationSplit?.seed ?? 1,
  );
  for (const line of summary) console.log(line);
  if (folder !== undefined && data.imageFolder === undefined) {
    throw new OptionError(
      `--model "${values.model}" was trained on a folder of pictures: pass it as --data (its test/ or held-out pictures are scored)`,
    );
  }
  if (data.classNames.join('\n') !== metadata.classNames.join('\n')) {
    throw new DataError(
      `${values.data ?? 'the data'}: its classes (${data.classNames.join(', ')}) are not the model's (${metadata.classNames.join(', ')})`,
    );
  }
  const out = values.out ?? values.model;
  const report = await writeReport({
    model,
    test: data.test,
    height: data.height,
    width: data.width,
    channels: channelsOf(data),
    greyAsInk: data.imageFolder === undefined,
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
 * What the model was trained on, from its model.json (a model written before it recorded that is
 * a Fashion-MNIST model), checked against the model's own input and output shapes: a model
 * directory is input like any other.
 */
function metadataOf(model: tf.LayersModel, dir: string): ModelMetadata {
  const metadata =
    checkModelMetadata(model.getUserDefinedMetadata(), join(dir, 'model.json'), DAMAGED) ??
    ({ classNames: FASHION_MNIST_CLASSES, image: { height: 28, width: 28, channels: 1 } } satisfies ModelMetadata);
  const { height, width, channels } = metadata.image;
  const input = String(model.inputs[0].shape);
  const output = String(model.outputs[0].shape);
  const images = [String([null, height, width, channels]), ...(channels === 1 ? [String([null, height, width])] : [])];
  if (!images.includes(input) || output !== String([null, metadata.classNames.length])) {
    const shape = (s: readonly (number | null)[]) => `[${s.slice(1).join(', ')}]`;
    throw new DataError(
      `${join(dir, 'model.json')}: the model takes inputs of shape ${shape(model.inputs[0].shape)} and gives ${shape(model.outputs[0].shape)}; ` +
        `predict needs ${height}x${width}${channels === 1 ? '' : `x${channels}`} images in and its ${metadata.classNames.length} classes out`,
    );
  }
  return metadata;
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

async function classifyImages(
  model: tf.LayersModel,
  metadata: ModelMetadata,
  paths: string[],
  savePreprocessed: boolean,
): Promise<void> {
  const { image, imageFolder, classNames } = metadata;
  // A model trained on a folder of pictures sees each as its training pictures were made; one
  // trained on Fashion-MNIST, as that dataset's images were made from photos.
  const prepare = (path: string) =>
    imageFolder === undefined
      ? preprocessImage(path, image.height)
      : readPicture(path, { ...image, channels: image.channels as 1 | 3, resize: imageFolder.resize });
  const prepared = [];
  // Every file is checked before any is classified: one bad file, one error, nothing half done.
  for (const path of paths) prepared.push({ path, pixels: await prepare(path) });
  for (const { path, pixels } of prepared) {
    const top = topClasses(model, pixels, image);
    console.log(
      `${path}: ${top.map(({ classIndex, probability }) => `${classNames[classIndex]} ${(100 * probability).toFixed(1)}%`).join(', ')}`,
    );
    if (savePreprocessed) {
      const target = `${path}.${image.height}x${image.width}.png`;
      await writeFile(target, imagePng(pixels, image.width, image.height, image.channels));
      console.log(`  wrote ${target}`);
    }
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
