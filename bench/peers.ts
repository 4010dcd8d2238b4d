/**
 * `npm run bench:peers`: the project's trainer against PyTorch on the same work. Both train the same
 * network on the same Fashion-MNIST files at the same global batch, with the same number of threads,
 * in alternating runs (ours, PyTorch, ours, PyTorch, ...), so that a slow spell of a shared machine
 * falls on both. Each epoch is training plus evaluating the 10,000 test images; the first epoch of
 * a run also starts threads and warms up, so the figure is the median of the epochs after it, over
 * all runs. Without a Python that has torch, it says how to get one and runs our side alone.
 *
 * With --to-accuracy, it also times each run until its test accuracy first reaches the target:
 * the seconds of its epochs up to that one, start-up of the workers included (our first epoch
 * starts them), loading the data left out on both sides. A recipe's schedule runs over all its
 * epochs, so a run is the whole recipe, and the time is that of its first epoch at the target.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { checkNumber, DEFAULTS } from '../src/coordinator/options.js';
import { DEBIAN_DIR, FASHION_MNIST_FILES, LOCAL_DIR, loadFashionMnist } from '../src/data/fashion-mnist.js';
import { parseFlags } from '../src/cli/flags.js';
import { AUGMENT_USAGE, checkAugmentFits, formatAugment, parseAugment } from '../src/data/augment.js';
import { isUserError, OptionError } from '../src/errors.js';
import type { LearningRateSchedule } from '../src/optimizer/schedule.js';
import {
  describeTorch,
  type EpochRecord,
  findTorchPython,
  CNN_LAYERS,
  MLP_LAYERS,
  ourModelFlags,
  RunError,
  type RunRecord,
  type RunSettings,
  runOurs,
  runTorch,
  TORCH_SCRIPT,
  type TorchInfo,
} from './peers/sides.js';
import { timeTo, type TimeToAccuracy } from './peers/to-accuracy.js';
import { median } from './stats.js';

/** Networks by name, in the layer grammar both sides read. */
const MODELS: Record<string, string> = { mlp: MLP_LAYERS, cnn: CNN_LAYERS };

const USAGE = `Usage: npm run bench:peers -- [flags]

Trains the same network on the same data at the same batch with this project and with PyTorch,
alternating runs, and prints seconds per epoch (training + test evaluation) for each.

Flags:
  --batch-size LIST  global batch sizes, e.g. 128,256 (default: 128,256)
  --epochs N         epochs per run, at least 2; the median is over epochs 2..N (default: 4)
  --lr X             Adam's initial learning rate on both sides, decayed by a cosine (default: ${DEFAULTS.learningRate})
  --to-accuracy X    also the time until the test accuracy first reaches X, e.g. 0.92: the
                     seconds of the epochs up to the first at X or above (at least 1 epoch)
  --runs N           alternating pairs of runs per batch size (default: 3)
  --workers N        our worker threads, and PyTorch's torch.set_num_threads (default: 2)
  --model NAME       ${Object.keys(MODELS).join(', ')} (default: mlp, ${MLP_LAYERS})
  --layers SPEC      a network in the layer grammar instead of --model
  --augment LIST     augment the training images on both sides, as npm run train's --augment:
                     ${AUGMENT_USAGE} (default: none)
  --data DIR         directory with the four Fashion-MNIST files (default: where npm run train looks)
  --json FILE        also write the runs and results as JSON
  -h, --help         show this help`;

interface Plan {
  readonly batchSizes: number[];
  readonly epochs: number;
  readonly runs: number;
  readonly learningRate: number;
  /** --to-accuracy's target, or undefined without it. */
  readonly toAccuracy: number | undefined;
  readonly workers: number;
  readonly layers: string;
  readonly modelName: string;
  readonly data: string | undefined;
  readonly json: string | undefined;
  /** `--augment`, as both sides read it back. */
  readonly augment: string | undefined;
  readonly help: boolean;
}

function parsePlan(argv: string[]): Plan {
  const { values } = parseFlags(argv, {
    'batch-size': { type: 'string' },
    epochs: { type: 'string' },
    runs: { type: 'string' },
    lr: { type: 'string' },
    'to-accuracy': { type: 'string' },
    workers: { type: 'string' },
    model: { type: 'string' },
    layers: { type: 'string' },
    augment: { type: 'string' },
    data: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  type Flag = keyof typeof values;
  const raw = (flag: Flag) => values[flag] as string | undefined;
  const integer = (flag: Flag, fallback: number, min: number, max: number) => {
    const text = raw(flag);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new OptionError(`--${flag} must be an integer between ${min} and ${max}, got "${text}"`);
    }
    return value;
  };
  const workersText = raw('workers');
  const batchText = raw('batch-size');
  const batchSizes =
    batchText === undefined
      ? [128, 256]
      : batchText.split(',').map((b) => checkNumber('batchSize', Number(b), '--batch-size', JSON.stringify(batchText)));
  const model = raw('model');
  const spec = raw('layers');
  if (model !== undefined && spec !== undefined) throw new OptionError('give --model or --layers, not both');
  if (model !== undefined && MODELS[model] === undefined) {
    throw new OptionError(`--model must be one of ${Object.keys(MODELS).join(', ')}, got "${model}"`);
  }
  for (const flag of ['data', 'json', 'layers'] as const) {
    if (raw(flag) === '') throw new OptionError(`--${flag} needs a value, got ""`);
  }
  const targetText = raw('to-accuracy');
  const toAccuracy = targetText === undefined ? undefined : Number(targetText);
  if (toAccuracy !== undefined && !(targetText?.trim() !== '' && toAccuracy > 0 && toAccuracy <= 1)) {
    throw new OptionError(
      `--to-accuracy must be a test accuracy above 0 and at most 1, e.g. 0.92, got "${targetText}"`,
    );
  }
  const lrText = raw('lr');
  const learningRate =
    lrText === undefined ? DEFAULTS.learningRate : checkNumber('learningRate', Number(lrText), '--lr', `"${lrText}"`);
  const augmentText = raw('augment');
  const augment = augmentText === undefined ? undefined : parseAugment(augmentText);
  checkAugmentFits(augment, 28, 28, '--augment');
  return {
    batchSizes,
    // Timing to an accuracy needs no later epochs to take a median of.
    epochs: integer('epochs', 4, toAccuracy === undefined ? 2 : 1, 1000),
    runs: integer('runs', 3, 1, 100),
    learningRate,
    toAccuracy,
    workers:
      workersText === undefined ? 2 : checkNumber('workers', Number(workersText), '--workers', `"${workersText}"`),
    layers: spec ?? MODELS[model ?? 'mlp'],
    modelName: spec === undefined ? (model ?? 'mlp') : 'layers',
    data: raw('data'),
    json: raw('json'),
    augment: augment === undefined ? undefined : formatAugment(augment),
    help: values.help === true,
  };
}

/**
 * The directory both sides read, found once so that both read the same files: --data, else where
 * our loader looks ($FASHION_MNIST_DIR, ./data/fashion-mnist, Debian's), else our loader's
 * verified download into ./data/fashion-mnist.
 */
async function dataDir(flag: string | undefined): Promise<string> {
  const explicit = flag ?? (process.env.FASHION_MNIST_DIR || undefined);
  const candidates = explicit !== undefined ? [explicit] : [LOCAL_DIR, DEBIAN_DIR];
  const complete = (dir: string) =>
    FASHION_MNIST_FILES.every((file) => existsSync(join(dir, `${file}.gz`)) || existsSync(join(dir, file)));
  const found = candidates.find(complete);
  if (found !== undefined) return resolve(found);
  await loadFashionMnist({ dir: flag }); // says what is wrong with an explicit directory, or downloads
  return resolve(LOCAL_DIR);
}

/** A side's runs at one batch size: per-epoch seconds, and the final test accuracy of each run. */
interface SideResult {
  readonly runs: EpochRecord[][];
  /** Median over all runs of the seconds of epochs 2..N. */
  readonly secondsPerEpoch: number;
  /** Median over the runs of the last epoch's test accuracy. */
  readonly testAccuracy: number;
  /**
   * With --to-accuracy: each run's time to the target (null where it never got there), and their
   * median, null unless every run got there.
   */
  readonly toAccuracy:
    { readonly target: number; readonly runs: (TimeToAccuracy | null)[]; readonly seconds: number | null } | undefined;
}

function summarize(runs: EpochRecord[][], target: number | undefined): SideResult {
  const timed = target === undefined ? [] : runs.map((epochs) => timeTo(epochs, target));
  const reached = timed.filter((time) => time !== null);
  return {
    runs,
    // With a single epoch (--to-accuracy allows it) the first one is all there is.
    secondsPerEpoch: median(runs.flatMap((epochs) => laterEpochs(epochs).map((e) => e.seconds))),
    testAccuracy: median(runs.map((epochs) => epochs[epochs.length - 1].testAccuracy)),
    toAccuracy:
      target === undefined
        ? undefined
        : {
            target,
            runs: timed,
            // Only when every run got there: a median over the runs that did would flatter a side.
            seconds: reached.length === runs.length ? median(reached.map((time) => time.seconds)) : null,
          },
  };
}

/** The epochs a run's seconds per epoch are taken over: after the first, or the first if it is all. */
function laterEpochs(epochs: readonly EpochRecord[]): readonly EpochRecord[] {
  return epochs.length === 1 ? epochs : epochs.slice(1);
}

/** The installed tfjs's version, without loading tfjs. */
function tfjsVersion(): string {
  return (createRequire(import.meta.url)('@tensorflow/tfjs/package.json') as { version: string }).version;
}

const pad = (value: string | number, width: number) => String(value).padStart(width);

async function main(): Promise<void> {
  const plan = parsePlan(process.argv.slice(2));
  if (plan.help) {
    console.log(USAGE);
    return;
  }
  // Everything that can be wrong with the flags is found before the first run.
  const ourFlags = ourModelFlags(plan.layers);
  const python = await findTorchPython();
  const torch = python === undefined ? undefined : await describeTorch(python, plan.layers, plan.workers);
  const data = await dataDir(plan.data);
  const schedule = DEFAULTS.schedule as LearningRateSchedule;
  const base = {
    layers: plan.layers,
    epochs: plan.epochs,
    threads: plan.workers,
    data,
    schedule,
    augment: plan.augment,
  };
  const settings = { ...base, learningRate: plan.learningRate, seed: DEFAULTS.seed };

  const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism() };
  const ours = { node: process.version, tfjs: tfjsVersion(), backend: 'wasm', workers: plan.workers, flags: ourFlags };
  console.log(
    `Peers: ${plan.layers} on Fashion-MNIST (${data}), ${plan.epochs} epochs per run, ` +
      `Adam lr ${settings.learningRate} (${schedule}), seed ${settings.seed}` +
      (plan.augment === undefined ? '' : `, augment ${plan.augment} (both sides, the same hash)`) +
      `; ${machine.cpu}, ${machine.cores} cores`,
  );
  console.log(
    `  ours:    npm run train -- ${ourFlags.join(' ')} --workers ${plan.workers}: Node.js ${ours.node}, ` +
      `tfjs ${ours.tfjs} on the ${ours.backend} backend, ${plan.workers} worker threads`,
  );
  if (torch === undefined) {
    console.log(
      '  PyTorch: skipped, no python3 with torch found (tried /usr/bin/python3, then python3 on PATH). ' +
        "To compare: apt-get install -y python3-torch libopenblas0-pthread (Debian's; it runs with /usr/bin/python3).",
    );
  } else {
    console.log(
      `  PyTorch: ${torch.executable} bench/peers/torch_train.py --model-py (the export's model.py) --threads ${plan.workers}: Python ${torch.python}, ` +
        `torch ${torch.torch}, BLAS ${torch.blas.name}${torch.blas.library ? ` (${torch.blas.library})` : ''}, ` +
        `torch.set_num_threads(${torch.threads}), OPENBLAS_NUM_THREADS=${torch.openblasThreads ?? 'unset'}`,
    );
    if (torch.blas.name === 'reference') {
      console.log(
        '  WARNING: torch runs on the reference BLAS, several times slower than OpenBLAS: apt-get install -y libopenblas0-pthread',
      );
    }
  }
  console.log('Each epoch is training plus evaluating the 10,000 test images; runs alternate, ours first.\n');

  const later = plan.epochs === 1 ? 'epoch 1' : plan.epochs === 2 ? 'epoch 2' : `epochs 2-${plan.epochs}`;
  const target = plan.toAccuracy;
  const when = (epochs: readonly EpochRecord[], goal: number) => {
    const reached = timeTo(epochs, goal);
    return reached === null
      ? `; never reached ${goal} (best ${Math.max(...epochs.map((e) => e.testAccuracy)).toFixed(4)})`
      : `; reached ${goal} in epoch ${reached.epoch}, after ${reached.seconds.toFixed(2)} s`;
  };
  const describeRun = (batchSize: number, run: number, side: string, epochs: EpochRecord[]) =>
    console.log(
      `batch ${batchSize}, run ${run}/${plan.runs}: ${side.padEnd(7)} ${laterEpochs(epochs)
        .map((e) => e.seconds.toFixed(2))
        .join(' ')} s (${later}), test accuracy ${epochs[epochs.length - 1].testAccuracy.toFixed(4)}` +
        (target === undefined ? '' : when(epochs, target)),
    );
  const results: {
    batchSize: number;
    ours: SideResult;
    pytorch: SideResult | null;
    ratio: number | null;
    /** PyTorch's time to the target over ours, where both sides reached it in every run. */
    toAccuracyRatio: number | null;
  }[] = [];
  // Every run of both sides must have read the same data: the first run's hash, and each after it.
  let dataSha256: string | undefined;
  const sameData = (record: RunRecord, side: string): EpochRecord[] => {
    dataSha256 ??= record.dataSha256;
    if (record.dataSha256 !== dataSha256) {
      throw new RunError(
        `the runs read different data from ${data}: sha256 ${dataSha256}, then ${record.dataSha256} (${side})`,
      );
    }
    return record.epochs;
  };
  for (const batchSize of plan.batchSizes) {
    const run: RunSettings = { ...settings, batchSize };
    const ourRuns: EpochRecord[][] = [];
    const torchRuns: EpochRecord[][] = [];
    for (let r = 1; r <= plan.runs; r++) {
      ourRuns.push(sameData(await runOurs(run), 'ours'));
      describeRun(batchSize, r, 'ours', ourRuns[ourRuns.length - 1]);
      if (python === undefined) continue;
      torchRuns.push(sameData(await runTorch(python, run), 'PyTorch'));
      describeRun(batchSize, r, 'PyTorch', torchRuns[torchRuns.length - 1]);
    }
    const oursResult = summarize(ourRuns, target);
    const torchResult = python === undefined ? null : summarize(torchRuns, target);
    const ratio = torchResult === null ? null : torchResult.secondsPerEpoch / oursResult.secondsPerEpoch;
    const oursTo = oursResult.toAccuracy?.seconds;
    const torchTo = torchResult?.toAccuracy?.seconds;
    const toAccuracyRatio = oursTo == null || torchTo == null ? null : torchTo / oursTo;
    results.push({ batchSize, ours: oursResult, pytorch: torchResult, ratio, toAccuracyRatio });
  }

  console.log(`\nData: sha256 ${dataSha256}, the same in every run${python === undefined ? '' : ' of both sides'}.`);
  console.log(
    `Seconds per epoch, median of ${later} over ${plan.runs === 1 ? 'the run' : `${plan.runs} runs each`}; test accuracy after the last epoch:`,
  );
  console.log(
    `${pad('batch', 5)} ${pad('ours', 6)} ${pad('PyTorch', 8)} ${pad('PyTorch/ours', 13)}   ${pad('test acc: ours', 14)} ${pad('PyTorch', 8)}`,
  );
  const dash = (value: string | undefined, width: number) => pad(value ?? '-', width);
  for (const r of results) {
    console.log(
      `${pad(r.batchSize, 5)} ${pad(r.ours.secondsPerEpoch.toFixed(2), 6)} ${dash(r.pytorch?.secondsPerEpoch.toFixed(2), 8)} ` +
        `${dash(r.ratio === null ? undefined : `${r.ratio.toFixed(2)}x`, 13)}   ${pad(r.ours.testAccuracy.toFixed(4), 14)} ` +
        `${dash(r.pytorch?.testAccuracy.toFixed(4), 8)}`,
    );
  }
  if (target !== undefined) {
    console.log(
      `\nSeconds until the test accuracy first reached ${target} (the epochs up to that one), median over ` +
        `${plan.runs === 1 ? 'the run' : `${plan.runs} runs each`}; "-" unless every run reached it:`,
    );
    console.log(`${pad('batch', 5)} ${pad('ours', 8)} ${pad('PyTorch', 8)} ${pad('PyTorch/ours', 13)}`);
    const reachedIn = (side: SideResult | null) =>
      side?.toAccuracy?.seconds == null ? undefined : side.toAccuracy.seconds.toFixed(2);
    for (const r of results) {
      console.log(
        `${pad(r.batchSize, 5)} ${dash(reachedIn(r.ours), 8)} ${dash(reachedIn(r.pytorch), 8)} ` +
          `${dash(r.toAccuracyRatio === null ? undefined : `${r.toAccuracyRatio.toFixed(2)}x`, 13)}`,
      );
    }
  }
  if (python !== undefined) console.log('PyTorch/ours above 1: ours is faster.');
  if (plan.json) {
    const pytorch: (TorchInfo & { script: string }) | null =
      torch === undefined ? null : { ...torch, script: TORCH_SCRIPT };
    const report = {
      machine,
      settings: { ...settings, runs: plan.runs, model: plan.modelName, toAccuracy: target ?? null },
      dataSha256,
      ours,
      pytorch,
      results,
    };
    writeFileSync(plan.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nWrote ${plan.json}`);
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) || error instanceof RunError ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
