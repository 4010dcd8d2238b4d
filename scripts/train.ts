/** `npm run train`: the tutorial's training run, on worker threads, from the command line. */
import { dirname, join } from 'node:path';
import { parseTrainArgs, type TrainArgs, TRAIN_USAGE } from '../src/cli/args.js';
import { prepareOutputDir } from '../src/cli/output.js';
import { loadData } from '../src/cli/data.js';
import { progressLine } from '../src/cli/progress.js';
import type { BatchProgress } from '../src/coordinator/config.js';
import { nodePlatform } from '../src/coordinator/node-platform.js';
import { DEFAULTS, resolveOptions } from '../src/coordinator/options.js';
import { dataSha256 } from '../src/data/data-hash.js';
import { checkAugment, checkAugmentFits } from '../src/data/augment.js';
import { channelsOf } from '../src/data/dataset.js';
import { InterruptedError, isUserError } from '../src/errors.js';
import { saveError, writeFilesAtomically } from '../src/files.js';
import { readCheckpoint } from '../src/coordinator/checkpoint.js';
import { buildNetwork } from '../src/model/network.js';
import { parseLayers } from '../src/model/spec.js';
import { drawReport } from '../src/report/report.js';
import { saveModel, train } from '../src/index.js';

/** The process that started this one (under `npm run train`, npm's shell), as it was at the start. */
const PARENT = process.ppid;

async function main(): Promise<void> {
  const args = parseTrainArgs(process.argv.slice(2));
  if (args.help) {
    console.log(TRAIN_USAGE);
    return;
  }
  const cleanUp = await prepareOutputDir(args.out);
  try {
    await run(args);
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

async function run(args: TrainArgs): Promise<void> {
  const interactive = process.stdout.isTTY === true && !args.quiet;
  const say = (line: string) => {
    if (!args.quiet) console.log(line);
  };
  const resume = args.resume === undefined ? undefined : await readCheckpoint(args.resume);
  const { epochs, seed } = resume?.config ?? resolveOptions(args.options, nodePlatform.cores);
  const { data, summary } = await loadData(args.data, args.imageFolder, seed ?? DEFAULTS.seed);
  for (const line of summary) say(line);
  if (args.layers !== undefined) {
    // The layers against the pictures' size and classes, named as the flag they came in.
    buildNetwork(parseLayers(args.layers, '--layers'), data, data.classNames.length, '--layers');
  }
  checkAugmentFits(checkAugment(args.options.augment), data.height, data.width, '--augment');
  // SIGINT or SIGTERM: finish the step, write a checkpoint, say how to resume. Twice: exit now
  // (files are written atomically and synchronously, so none is ever half written).
  const interrupter = new AbortController();
  const onSignal = (name: string) => {
    if (interrupter.signal.aborted) {
      process.stderr.write(`\n${name} again: exiting now\n`);
      process.exit(130);
    }
    process.stderr.write(
      `\n${name}: finishing the current step and writing a checkpoint (${name} again exits at once)\n`,
    );
    interrupter.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // `npm run train` runs this under `sh -c`, and a SIGTERM to npm (docker stop, systemd, a CI
  // timeout, kill) ends npm and the shell without passing it on: this process is left to a new
  // parent. That is taken as the SIGTERM it did not get. Checked twice a second, at no cost.
  const watchParent = setInterval(() => {
    if (process.ppid === PARENT) return;
    clearInterval(watchParent);
    if (interrupter.signal.aborted) return;
    process.stderr.write(
      '\nthe parent process exited (as npm does on SIGTERM): finishing the current step and writing a checkpoint\n',
    );
    interrupter.abort();
  }, 500).unref();
  let latest: BatchProgress | undefined;
  const result = await train({
    ...args.options,
    data,
    resume,
    checkpointDir: args.out,
    interrupt: interrupter.signal,
    onBatchEnd: (progress) => {
      if (latest?.epoch !== progress.epoch) say(`Epoch ${progress.epoch}/${epochs}`);
      latest = progress;
      if (interactive) process.stdout.write(`\r${progressLine(progress)}`);
    },
    // The run's final score is printed last, below the pictures' summary.
    onLog: (line) => {
      if (!line.startsWith('Test ')) say(line);
    },
    onEpochEnd: (log) => {
      if (latest === undefined) return;
      if (interactive) process.stdout.write('\r\x1b[2K');
      say(progressLine(latest, log));
    },
  });
  // The results, in this order. A failure (a full disk) is one line saying what was saved.
  await saveModel(result.model, args.out).catch((error: unknown) => {
    throw saveError(args.out, error, {
      saved: [],
      notSaved: ['the model (model.json, weights.bin)', 'metrics.json', 'the pictures', 'report.json'],
    });
  });
  const metrics = {
    testAccuracy: result.testAccuracy,
    testLoss: result.testLoss,
    wallSeconds: result.wallSeconds,
    config: {
      ...result.config,
      learningRate: result.config.adam.learningRate,
      augment: result.config.augment ?? null,
      data: args.data ?? null,
      dataSha256: dataSha256(data),
      classNames: data.classNames,
      image: { height: data.height, width: data.width, channels: channelsOf(data) },
      imageFolder: data.imageFolder ?? null,
    },
    epochs: result.history,
  };
  writeFilesAtomically(args.out, [{ name: 'metrics.json', data: `${JSON.stringify(metrics, null, 2)}\n` }], {
    saved: ['model.json', 'weights.bin'],
    after: ['the pictures', 'report.json'],
  });
  say(`Saved the model (model.json, weights.bin) and metrics.json in ${args.out} (${result.wallSeconds.toFixed(1)} s)`);
  const report = drawReport({
    model: result.model,
    test: data.test,
    height: data.height,
    width: data.width,
    channels: channelsOf(data),
    // Fashion-MNIST's light garments on black are drawn dark on white, as the tutorial does; your
    // own pictures as they are.
    greyAsInk: data.imageFolder === undefined,
    classNames: data.classNames,
    history: result.history,
    seed: result.config.seed,
  });
  writeFilesAtomically(args.out, report.files, { saved: ['model.json', 'weights.bin', 'metrics.json'] });
  say(report.table);
  say(
    `Pictures: ${report.files
      .filter((f) => f.name.endsWith('.png'))
      .map((f) => join(args.out, f.name))
      .join(', ')}`,
  );
  say(`Test loss: ${result.testLoss.toFixed(4)}`);
  console.log(`Test accuracy: ${result.testAccuracy.toFixed(4)}`);
}

main().catch((error: unknown) => {
  if (error instanceof InterruptedError) {
    console.error(`Interrupted at epoch ${error.epoch}, step ${error.step}; checkpoint: ${error.checkpoint}`);
    console.error(`Resume with: npm run train -- --resume ${dirname(error.checkpoint ?? '.')}`);
    process.exitCode = 130;
    return;
  }
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
