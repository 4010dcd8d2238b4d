/**
 * `npm run bench:web`: the page's training speed in Chromium beside the same run in Node. Both run
 * the same trainer (trainOn) on the same images with the same settings, Web Workers on one side and
 * Piscina's threads on the other, in alternating runs (Node, browser, Node, browser, ...), so that a
 * slow spell of a shared machine falls on both. A run's figure per epoch is the training images
 * per second of the epoch's training part (as the page's table shows it); the first epoch also
 * starts the workers, so the result is the median of epochs 2..N over all runs.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { BatchProgress } from '../src/coordinator/config.js';
import { train } from '../src/coordinator/node-platform.js';
import { checkNumber } from '../src/coordinator/options.js';
import { loadFashionMnist, locateFashionMnist } from '../src/data/fashion-mnist.js';
import { parseFlags } from '../src/cli/flags.js';
import { isUserError, OptionError } from '../src/errors.js';
import { buildPage } from '../src/web/build.js';
import { CHROMIUM, launchChromium } from '../src/web/chromium.js';
import { type PageSettings, pageReady, trainOnPage } from '../src/web/page-driver.js';
import { servePage } from '../src/web/server.js';
import { median } from './stats.js';

const USAGE = `Usage: npm run bench:web -- [flags]

Trains with the same settings in Chromium (the page of npm run web, on Web Workers) and in Node
(Piscina's worker threads), alternating runs, and prints the training samples per second of each.

Flags:
  --model mlp|cnn    the network (default: mlp)
  --images N         the first N training images (default: 60000)
  --epochs N         epochs per run, at least 2; the median is over epochs 2..N (default: 3)
  --runs N           alternating pairs of runs (default: 3)
  --workers N        workers on both sides (default: 2)
  --batch-size N     global batch (default: 128)
  --data DIR         directory with the four Fashion-MNIST files (default: where npm run train looks)
  --json FILE        also write the runs and results as JSON
  -h, --help         show this help`;

interface Plan {
  readonly settings: PageSettings;
  readonly runs: number;
  readonly data: string | undefined;
  readonly json: string | undefined;
}

function parsePlan(argv: string[]): Plan | undefined {
  const { values } = parseFlags(argv, {
    model: { type: 'string' },
    images: { type: 'string' },
    epochs: { type: 'string' },
    runs: { type: 'string' },
    workers: { type: 'string' },
    'batch-size': { type: 'string' },
    data: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) return undefined;
  const integer = (flag: keyof typeof values, fallback: number, min: number, max: number): number => {
    const text = values[flag] as string | undefined;
    const value = text === undefined ? fallback : Number(text);
    if (!(Number.isInteger(value) && value >= min && value <= max)) {
      throw new OptionError(`--${flag} must be an integer between ${min} and ${max}, got ${JSON.stringify(text)}`);
    }
    return value;
  };
  const model = (values.model as string | undefined) ?? 'mlp';
  if (model !== 'mlp' && model !== 'cnn')
    throw new OptionError(`--model must be mlp or cnn, got ${JSON.stringify(model)}`);
  const batchSize = values['batch-size'] as string | undefined;
  return {
    settings: {
      model,
      images: integer('images', 60_000, 1, 60_000),
      epochs: integer('epochs', 3, 2, 100),
      workers: checkNumber('workers', Number(values.workers ?? 2), '--workers', JSON.stringify(values.workers)),
      batchSize: checkNumber('batchSize', Number(batchSize ?? 128), '--batch-size', JSON.stringify(batchSize)),
      seed: 1,
    },
    runs: integer('runs', 3, 1, 100),
    data: values.data as string | undefined,
    json: values.json as string | undefined,
  };
}

async function main(): Promise<void> {
  const plan = parsePlan(process.argv.slice(2));
  if (plan === undefined) {
    console.log(USAGE);
    return;
  }
  const { settings } = plan;
  const data = await loadFashionMnist({ dir: plan.data });
  const count = Math.min(settings.images, data.train.count);
  const subset = {
    ...data,
    train: {
      images: data.train.images.subarray(0, count * data.height * data.width),
      labels: data.train.labels.subarray(0, count),
      count,
    },
  };
  const server = await servePage({
    pageDir: await buildPage(),
    dataFiles: await locateFashionMnist({ dir: plan.data }),
    port: 0,
  });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await pageReady(page);
    const chromium = browser.version();
    console.log(
      `Web vs Node: ${settings.model} on ${count} images, ${settings.workers} workers, batch ${settings.batchSize}, ` +
        `${settings.epochs} epochs per run, ${plan.runs} runs each, alternating (Node first); ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores`,
    );
    console.log(`  browser: Chromium ${chromium} (${CHROMIUM}), headless, the page of npm run web, Web Workers`);
    console.log(`  Node:    ${process.version}, train() in this process, Piscina worker threads`);
    console.log('Training samples per second of each epoch (the first also starts the workers):');
    const runs: { side: 'node' | 'browser'; run: number; samplesPerSecond: number[]; testAccuracy: number }[] = [];
    for (let run = 1; run <= plan.runs; run++) {
      let last: BatchProgress | undefined;
      const perEpoch: number[] = [];
      const inNode = await train({
        data: subset,
        model: settings.model,
        workers: settings.workers,
        epochs: settings.epochs,
        batchSize: settings.batchSize,
        seed: settings.seed,
        onBatchEnd: (progress) => (last = progress),
        onEpochEnd: () => void perEpoch.push(count / (last as BatchProgress).seconds),
      });
      inNode.model.dispose();
      runs.push({ side: 'node', run, samplesPerSecond: perEpoch, testAccuracy: inNode.testAccuracy });
      const inBrowser = await trainOnPage(page, settings);
      runs.push({ side: 'browser', run, ...inBrowser, samplesPerSecond: [...inBrowser.samplesPerSecond] });
      for (const side of runs.slice(-2)) {
        console.log(
          `run ${run}/${plan.runs}: ${side.side.padEnd(7)} ${side.samplesPerSecond.map((s) => String(Math.round(s)).padStart(7)).join(' ')}` +
            `   test accuracy ${side.testAccuracy.toFixed(4)}`,
        );
      }
    }
    const result = (side: 'node' | 'browser') =>
      median(runs.filter((r) => r.side === side).flatMap((r) => r.samplesPerSecond.slice(1)));
    const node = result('node');
    const web = result('browser');
    console.log('');
    console.log(`Median of epochs 2-${settings.epochs}, training samples per second:`);
    console.log(`  Node     ${Math.round(node)}`);
    console.log(`  browser  ${Math.round(web)}`);
    console.log(`  Node / browser: ${(node / web).toFixed(2)}x (the target: at most 1.3x)`);
    if (plan.json !== undefined) {
      const json = {
        settings: { ...settings, images: count, runs: plan.runs },
        machine: { cpu: cpus()[0]?.model, cores: cpus().length },
        versions: { node: process.version, chromium },
        runs,
        samplesPerSecond: { node, browser: web },
        nodeOverBrowser: node / web,
      };
      writeFileSync(plan.json, `${JSON.stringify(json, null, 2)}\n`);
      console.log(`Wrote ${plan.json}`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
