/**
 * `npm run bench:soak`: a long run with more workers than cores, watching memory. Trains 30 epochs
 * with 8 workers on the real data and prints the process's RSS after every epoch; memory that keeps
 * growing after the first epochs is a leak. Flags: --model mlp|cnn, --epochs N, --workers N, --json FILE.
 */
import { writeFileSync } from 'node:fs';
import { checkNumber } from '../src/coordinator/options.js';
import { parseFlags } from '../src/cli/flags.js';
import { isUserError, OptionError } from '../src/errors.js';
import { type Preset, PRESETS } from '../src/model/spec.js';
import { loadFashionMnist, train } from '../src/index.js';

async function main(): Promise<void> {
  const { values } = parseFlags(
    process.argv.slice(2),
    {
      model: { type: 'string' },
      epochs: { type: 'string' },
      workers: { type: 'string' },
      json: { type: 'string' },
    },
    { help: false },
  );
  const epochs =
    values.epochs === undefined
      ? 30
      : checkNumber('epochs', Number(values.epochs), '--epochs', JSON.stringify(values.epochs));
  const workers =
    values.workers === undefined
      ? 8
      : checkNumber('workers', Number(values.workers), '--workers', JSON.stringify(values.workers));
  const model = values.model ?? 'mlp';
  if (!PRESETS.includes(model as Preset))
    throw new OptionError(`--model must be ${PRESETS.join(' or ')}, got "${model}"`);
  const data = await loadFashionMnist();
  const rows: { epoch: number; rssMb: number; seconds: number; testAccuracy: number }[] = [];
  console.log(`Soak: model ${model}, ${epochs} epochs, ${workers} workers`);
  console.log('epoch  RSS MB  seconds  test accuracy');
  await train({
    data,
    model,
    workers,
    epochs,
    onEpochEnd: (log) => {
      const rssMb = process.memoryUsage.rss() / 2 ** 20;
      rows.push({ epoch: log.epoch, rssMb, seconds: log.seconds, testAccuracy: log.testAccuracy });
      console.log(
        `${String(log.epoch).padStart(5)}  ${rssMb.toFixed(1).padStart(6)}  ${log.seconds.toFixed(2).padStart(7)}  ${log.testAccuracy.toFixed(4)}`,
      );
    },
  });
  // Growth is counted once start-up has settled: from epoch 5, or from epoch 2 in a run shorter than 10 epochs.
  const fromEpoch = epochs >= 10 ? 5 : Math.min(2, epochs);
  const from = rows.find((r) => r.epoch === fromEpoch) as (typeof rows)[number];
  const to = rows[rows.length - 1];
  const growth = (to.rssMb - from.rssMb) / from.rssMb;
  console.log(
    `RSS from epoch ${from.epoch} to ${to.epoch}: ${from.rssMb.toFixed(1)} -> ${to.rssMb.toFixed(1)} MB (${(100 * growth).toFixed(2)}%)`,
  );
  if (values.json) writeFileSync(values.json, `${JSON.stringify({ model, epochs, workers, rows, growth }, null, 2)}\n`);
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
