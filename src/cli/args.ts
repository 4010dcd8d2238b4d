import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { checkHidden, checkNumber, checkSchedule, type LimitedOption } from '../coordinator/options.js';
import type { LearningRateSchedule } from '../coordinator/schedule.js';
import { OptionError } from '../errors.js';

export interface TrainArgs {
  readonly workers: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly schedule: LearningRateSchedule;
  readonly seed: number;
  readonly hidden: number[];
  readonly data: string | undefined;
  readonly out: string;
  readonly quiet: boolean;
  readonly help: boolean;
}

export const TRAIN_USAGE = `Usage: npm run train -- [flags]

Trains Flatten -> Dense(128, relu) -> Dense(10, softmax) on Fashion-MNIST with data-parallel
worker threads, evaluates it on the 10,000 test images after every epoch, and saves the model.

Flags:
  --workers N       worker threads computing gradients (default: ${availableParallelism()}, the number of cores)
  --epochs N        passes over the 60,000 training images (default: 10)
  --batch-size N    global batch: samples per step over all workers (default: 32)
  --lr X            Adam's learning rate (default: 0.001)
  --lr-schedule S   constant, or cosine: decay the rate to 0 over the run (default: constant)
  --seed N          seeds the initial weights and the shuffles (default: 1)
  --hidden LIST     hidden layer widths, e.g. 128 or 256,128 (default: 128)
  --data DIR        directory with the four Fashion-MNIST files, gzipped or not
                    (default: $FASHION_MNIST_DIR, ./data/fashion-mnist, /usr/share/datasets/fashion-mnist,
                    else a verified download into ./data/fashion-mnist)
  --out DIR         where model.json, weights.bin and metrics.json go (default: runs/<timestamp>)
  --quiet           print only the final test score
  -h, --help        show this help`;

const NUMERIC_FLAGS: Record<string, LimitedOption> = {
  workers: 'workers', epochs: 'epochs', 'batch-size': 'batchSize', lr: 'learningRate', seed: 'seed',
};

/** Parses `npm run train` flags; a bad flag throws an OptionError naming it. */
export function parseTrainArgs(argv: readonly string[], now = new Date()): TrainArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: joinNegativeValues(argv),
      strict: true,
      allowPositionals: false,
      options: {
        workers: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' },
        lr: { type: 'string' }, 'lr-schedule': { type: 'string' }, seed: { type: 'string' }, hidden: { type: 'string' },
        data: { type: 'string' }, out: { type: 'string' },
        quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new OptionError(`${parseErrorText(error as Error)} (see --help)`);
  }
  const number = (flag: string, fallback: number): number => {
    const raw = values[flag];
    if (raw === undefined) return fallback;
    return checkNumber(NUMERIC_FLAGS[flag], Number(raw), `--${flag}`, JSON.stringify(raw));
  };
  const hiddenRaw = values.hidden as string | undefined;
  const hidden = hiddenRaw === undefined
    ? [128]
    : checkHidden(hiddenRaw.split(',').map((w) => (w.trim() === '' ? NaN : Number(w))), '--hidden', JSON.stringify(hiddenRaw));
  for (const flag of ['data', 'out'] as const) {
    if (values[flag] === '') throw new OptionError(`--${flag} needs a directory, got ""`);
  }
  return {
    workers: number('workers', availableParallelism()),
    epochs: number('epochs', 10),
    batchSize: number('batch-size', 32),
    learningRate: number('lr', 0.001),
    schedule: values['lr-schedule'] === undefined ? 'constant' : checkSchedule(values['lr-schedule'], '--lr-schedule', JSON.stringify(values['lr-schedule'])),
    seed: number('seed', 1),
    hidden,
    data: values.data as string | undefined,
    out: (values.out as string | undefined) ?? `runs/${now.toISOString().replace(/[:.]/g, '-')}`,
    quiet: values.quiet === true,
    help: values.help === true,
  };
}

/**
 * `--workers -1` as `--workers=-1`: parseArgs would take `-1` for a flag and report a missing
 * value, where the user needs to hear that -1 is out of range.
 */
function joinNegativeValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (/^--[\w-]+$/.test(argv[i]) && /^-\d|^-\.\d/.test(argv[i + 1] ?? '')) out.push(`${argv[i]}=${argv[++i]}`);
    else out.push(argv[i]);
  }
  return out;
}

/** Node's parseArgs messages, reduced to one line. */
function parseErrorText(error: Error & { code?: string }): string {
  const flag = /'(-{1,2}[\w-]+)/.exec(error.message)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${flag ?? error.message}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return error.message.includes('does not take') ? `${flag} takes no value` : `${flag ?? 'a flag'} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']*)'/.exec(error.message)?.[1] ?? ''}`.trim();
    default:
      return error.message.split('\n')[0];
  }
}
