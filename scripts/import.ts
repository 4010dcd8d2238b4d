/** `npm run import`: a PyTorch folder of `npm run export` (trained by train_ddp.py, or not) back as a run of ours. */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFlags } from '../src/cli/flags.js';
import { prepareOutputDir } from '../src/cli/output.js';
import { checkNumber } from '../src/coordinator/options.js';
import type { Dataset } from '../src/data/dataset.js';
import { FASHION_MNIST_CLASSES, loadFashionMnist } from '../src/data/fashion-mnist.js';
import { isUserError, OptionError } from '../src/errors.js';
import { importPyTorch } from '../src/export/import.js';
import { readDataFiles } from '../src/export/run-data.js';
import { type PyTorchRun, readPyTorchRun } from '../src/export/run-folder.js';

const USAGE = `Usage: npm run import -- --from DIR2 --out DIR3 [--data DIR] [--workers N]

Brings a PyTorch folder written by npm run export (and continued by its train_ddp.py, or not)
back into DIR3 as a run of npm run train: model.json + weights.bin (for tf.loadLayersModel and
npm run predict), metrics.json (the history, and the test scores of the model, evaluated here),
and checkpoint.bin when the folder has Adam's state, so that npm run train -- --resume DIR3
continues the run. The model keeps the run's class names, image size and channels, and how its
pictures were fitted, for npm run predict.

  --from DIR2    the PyTorch folder
  --out DIR3     a new or empty directory
  --data DIR     the run's four IDX files, gzipped or not (default: for a run on a folder of
                 pictures, those the export wrote into DIR2; else Fashion-MNIST, found as
                 npm run train finds it)
  --workers N    worker threads for the evaluation (default: the number of cores)`;

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    from: { type: 'string' },
    out: { type: 'string' },
    data: { type: 'string' },
    workers: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.from === undefined || values.from === '') {
    throw new OptionError('--from DIR2 is required: a folder written by npm run export');
  }
  if (values.out === undefined || values.out === '') throw new OptionError('--out DIR3 is required: a new directory');
  const workers =
    values.workers === undefined
      ? undefined
      : checkNumber('workers', Number(values.workers), '--workers', JSON.stringify(values.workers));
  const entries = await readdir(values.out).catch(() => []);
  if (entries.length > 0) throw new OptionError(`--out "${values.out}" is not empty; pick a new directory`);
  // The folder is checked whole before anything else is read or written.
  const run = await readPyTorchRun(values.from);
  const data = await dataOf(run, values.from, values.data);
  const cleanUp = await prepareOutputDir(values.out);
  try {
    const result = await importPyTorch({
      run,
      from: values.from,
      out: values.out,
      data,
      dataDir: values.data,
      workers,
    });
    const { checkpoint, config, history } = run;
    const where =
      checkpoint === undefined
        ? `${history.length} epochs of history, no checkpoint`
        : `after epoch ${checkpoint.epochsDone}${checkpoint.stepsDone > 0 ? `, step ${checkpoint.stepsDone}` : ''} of ${config.epochs}`;
    console.log(`Imported ${values.from} (${config.model}, ${where}) into ${values.out}: ${result.files.join(', ')}`);
    const last = history.at(-1);
    console.log(`Test loss: ${result.testLoss.toFixed(4)}`);
    console.log(
      `Test accuracy: ${result.testAccuracy.toFixed(4)}${last === undefined ? '' : ` (the run's own evaluation after epoch ${last.epoch}: ${last.testAccuracy.toFixed(4)})`}`,
    );
    if (checkpoint !== undefined && checkpoint.epochsDone < config.epochs) {
      console.log(`Continue it here: npm run train -- --resume ${values.out}${pictureFlags(run)}`);
    }
  } catch (error) {
    // Nothing half-written is left looking like a result: the directory was new or empty.
    for (const name of ['model.json', 'weights.bin', 'metrics.json', 'checkpoint.bin']) {
      await rm(join(values.out, name), { force: true });
    }
    await cleanUp();
    throw error;
  }
}

/** The data to evaluate on: --data's IDX files, else the run's pictures in the folder, else Fashion-MNIST. */
async function dataOf(run: PyTorchRun, from: string, dir: string | undefined): Promise<Dataset> {
  const [height, width, channels] = run.network.input;
  const { metadata, pictures } = run.data;
  if (dir === undefined && pictures === undefined) return loadFashionMnist();
  const classNames =
    metadata?.classNames ??
    (run.network.classes === FASHION_MNIST_CLASSES.length
      ? FASHION_MNIST_CLASSES
      : Array.from({ length: run.network.classes }, (_, i) => String(i)));
  return readDataFiles(dir ?? from, { height, width, channels, classNames });
}

/** What npm run train -- --resume needs besides the directory, for a run on a folder of pictures: the folder, and how its pictures were made. */
function pictureFlags(run: PyTorchRun): string {
  const { metadata, pictures } = run.data;
  if (pictures === undefined || metadata === undefined) return '';
  const { height, width, channels } = metadata.image;
  const split = metadata.imageFolder?.validationSplit;
  return (
    ` --data ${pictures.folder} --image-size ${height}x${width} --channels ${channels}` +
    ` --resize ${metadata.imageFolder?.resize ?? 'stretch'}${split === undefined ? '' : ` --validation-split ${split.fraction}`}`
  );
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
