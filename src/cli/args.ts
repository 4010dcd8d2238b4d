import { availableParallelism } from 'node:os';
import {
  checkHidden,
  checkNumber,
  checkSchedule,
  DEFAULTS,
  defaultWorkers,
  type LimitedOption,
  type TrainOptions,
} from '../coordinator/options.js';
import { AUGMENT_USAGE, checkAugmentFits, parseAugment } from '../data/augment.js';
import { FASHION_MNIST_CLASSES } from '../data/fashion-mnist.js';
import { OptionError } from '../errors.js';
import { buildNetwork } from '../model/network.js';
import { isImageFolder } from '../data/image-folder.js';
import { LAYERS_GRAMMAR, parseLayers, PRESETS } from '../model/spec.js';
import { IMAGE_FOLDER_FLAGS, IMAGE_FOLDER_USAGE, type ImageFolderArgs, parseImageFolderFlags } from './data.js';
import { parseFlags } from './flags.js';

export interface TrainArgs {
  /** Only the options given as flags; the library fills in its defaults. */
  readonly options: TrainOptions;
  readonly data: string | undefined;
  /** `--layers`, to be checked against a folder of pictures once it is read. */
  readonly layers: string | undefined;
  /** How to read `data` when it is a folder of pictures. */
  readonly imageFolder: ImageFolderArgs;
  readonly out: string;
  /** A run directory to continue from its checkpoint.bin. */
  readonly resume: string | undefined;
  readonly quiet: boolean;
  readonly help: boolean;
}

export const TRAIN_USAGE = `Usage: npm run train -- [flags]

Trains a model on Fashion-MNIST (or a folder of your own pictures) with data-parallel worker
threads, evaluates it on the test images after every epoch, and saves it. The default model is the
tutorial's Flatten -> Dense(128, relu) -> Dense(10, softmax).

Flags:
  --workers N       worker threads computing gradients (default: ${defaultWorkers(availableParallelism())}, the number of cores)
  --epochs N        passes over the 60,000 training images (default: ${DEFAULTS.epochs})
  --batch-size N    global batch: samples per step over all workers (default: ${DEFAULTS.batchSize})
  --lr X            Adam's initial learning rate (default: ${DEFAULTS.learningRate})
  --lr-schedule S   cosine: decay the rate to 0 over the run; constant: keep it (default: ${DEFAULTS.schedule})
                    (the tutorial's exact recipe: --batch-size 32 --lr 0.001 --lr-schedule constant)
  --seed N          seeds the initial weights and the shuffles (default: ${DEFAULTS.seed})
  --model NAME      mlp: the tutorial's model; cnn: ${'conv:32:3:same,pool,conv:64:3:same,pool,flatten,dense:128,'}
                    ${'dropout:0.5,dense:10'} (default: ${DEFAULTS.model})
  --hidden LIST     the mlp's hidden layer widths, e.g. 128 or 256,128 (default: ${DEFAULTS.hidden.join(',')})
  --layers SPEC     any model, as ${LAYERS_GRAMMAR.replace(/\n/g, '\n                    ')}
  --augment LIST    change each training image at random, afresh every epoch: ${AUGMENT_USAGE}
                    (flip: left to right, half the time; shift:N: move by up to N pixels along each
                    axis, zeros filling in; default: none)
  --data DIR        directory with the four Fashion-MNIST files, gzipped or not
                    (default: $FASHION_MNIST_DIR, ./data/fashion-mnist, /usr/share/datasets/fashion-mnist,
                    else a verified download into ./data/fashion-mnist), or a folder of pictures (below)
  --out DIR         where model.json, weights.bin, metrics.json, pictures and checkpoint.bin go
                    (default: runs/<timestamp>; with --resume, the resumed directory)
  --checkpoint-every N
                    write checkpoint.bin every N epochs (default: 0, only on SIGINT/SIGTERM)
  --resume DIR      continue the run whose checkpoint.bin is in DIR, with its settings; --workers
                    may differ (SIGINT or SIGTERM finishes the step, writes a checkpoint and says
                    how to resume)
  --quiet           print only the final test accuracy
  -h, --help        show this help

${IMAGE_FOLDER_USAGE}`;

const NUMERIC_FLAGS = {
  workers: 'workers',
  epochs: 'epochs',
  'batch-size': 'batchSize',
  lr: 'learningRate',
  seed: 'seed',
  'checkpoint-every': 'checkpointEvery',
} as const satisfies Record<string, LimitedOption>;

/**
 * Flags that define a run: a resumed run takes them from its checkpoint. `--workers` is not one: N
 * workers compute the same steps as 1, to float rounding.
 */
const RUN_FLAGS = ['epochs', 'batch-size', 'lr', 'lr-schedule', 'seed', 'model', 'hidden', 'layers', 'augment'];

/** Parses `npm run train` flags; a bad flag throws an OptionError naming it. */
export function parseTrainArgs(argv: readonly string[], now = new Date()): TrainArgs {
  const { values } = parseFlags(argv, {
    workers: { type: 'string' },
    epochs: { type: 'string' },
    'batch-size': { type: 'string' },
    lr: { type: 'string' },
    'lr-schedule': { type: 'string' },
    seed: { type: 'string' },
    hidden: { type: 'string' },
    model: { type: 'string' },
    layers: { type: 'string' },
    augment: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    'checkpoint-every': { type: 'string' },
    resume: { type: 'string' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...IMAGE_FOLDER_FLAGS,
  });
  const byName: Record<string, string | boolean | undefined> = values;
  const raw = (flag: string) => byName[flag] as string | undefined;
  const options: Record<string, unknown> = {};
  for (const [flag, name] of Object.entries(NUMERIC_FLAGS)) {
    const value = raw(flag);
    if (value !== undefined) options[name] = checkNumber(name, Number(value), `--${flag}`, JSON.stringify(value));
  }
  const hidden = raw('hidden');
  if (hidden !== undefined) {
    const widths = hidden.split(',').map((w) => (w.trim() === '' ? NaN : Number(w)));
    options.hidden = checkHidden(widths, '--hidden', JSON.stringify(hidden));
  }
  const model = raw('model');
  const layers = raw('layers');
  if (model !== undefined && layers !== undefined) throw new OptionError('give --model or --layers, not both');
  if (model !== undefined && !PRESETS.includes(model as (typeof PRESETS)[number])) {
    throw new OptionError(`--model must be ${PRESETS.join(' or ')}, got "${model}"; for other models, use --layers`);
  }
  if (hidden !== undefined && (layers !== undefined || (model !== undefined && model !== 'mlp'))) {
    throw new OptionError('--hidden applies to --model mlp only; write the layers in --layers instead');
  }
  const data = raw('data');
  if (layers !== undefined) {
    // Fashion-MNIST's shapes are known: a layer list that does not fit them fails here, before any
    // data is read. A folder of pictures' are known once it is read; train() checks them then.
    const specs = parseLayers(layers, '--layers');
    if (data === undefined || !isImageFolder(data)) {
      buildNetwork(specs, { height: 28, width: 28 }, FASHION_MNIST_CLASSES.length, '--layers');
    }
    options.model = layers;
  } else if (model !== undefined) {
    options.model = model;
  }
  const augment = raw('augment');
  if (augment !== undefined) {
    const parsed = parseAugment(augment);
    // As for --layers: Fashion-MNIST's size is known now, a folder of pictures' once it is read.
    if (data === undefined || !isImageFolder(data)) checkAugmentFits(parsed, 28, 28, '--augment');
    options.augment = parsed;
  }
  const schedule = raw('lr-schedule');
  if (schedule !== undefined) options.schedule = checkSchedule(schedule, '--lr-schedule', JSON.stringify(schedule));
  for (const flag of ['data', 'out', 'resume']) {
    if (raw(flag) === '') throw new OptionError(`--${flag} needs a directory, got ""`);
  }
  const resume = raw('resume');
  const conflicting = RUN_FLAGS.filter((flag) => raw(flag) !== undefined);
  if (resume !== undefined && conflicting.length > 0) {
    throw new OptionError(
      `--resume keeps the run's settings from its checkpoint; drop ${conflicting.map((f) => `--${f}`).join(', ')}`,
    );
  }
  return {
    options,
    data,
    layers,
    imageFolder: parseImageFolderFlags(byName),
    resume,
    out: raw('out') ?? resume ?? `runs/${now.toISOString().replace(/[:.]/g, '-')}`,
    quiet: values.quiet === true,
    help: values.help === true,
  };
}
