/** `npm run export`: a run of `npm run train` as a PyTorch folder that continues it under DistributedDataParallel. */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFlags } from '../src/cli/flags.js';
import { prepareOutputDir } from '../src/cli/output.js';
import { isUserError, OptionError } from '../src/errors.js';
import { EXPORT_FILES, exportPyTorch } from '../src/export/pytorch.js';

const USAGE = `Usage: npm run export -- --model DIR --format pytorch --out DIR2

Writes the run in DIR (a directory of npm run train: model.json and weights.bin, and checkpoint.bin
when it has one) as a PyTorch folder in DIR2, which continues the same run under
DistributedDataParallel, on one machine or many:
  model.safetensors        the weights, in PyTorch's layouts
  checkpoint.safetensors   with a checkpoint: Adam's moments and the epoch's order
  run.json                 the settings, the progress, the generator's state, the history
  model.py                 the network as a torch.nn.Module
  train_ddp.py             continues the run: python3 train_ddp.py [--epochs N] [--out DIR]
  launch.py                starts DDP ranks where torchrun does not run (Debian 12)
  README.md                how to launch it here and on a cluster
npm run import -- --from DIR2 --out DIR3 brings it back.

  --model DIR      the run to export
  --format pytorch the only format so far
  --out DIR2       a new or empty directory`;

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    model: { type: 'string' },
    format: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.model === undefined || values.model === '') {
    throw new OptionError('--model DIR is required: a directory written by npm run train');
  }
  if (values.format !== undefined && values.format !== 'pytorch') {
    throw new OptionError(`--format must be pytorch, got "${values.format}"`);
  }
  if (values.out === undefined || values.out === '') throw new OptionError('--out DIR2 is required: a new directory');
  await refuseNonEmpty(values.out);
  const cleanUp = await prepareOutputDir(values.out);
  try {
    const { run, files, note } = await exportPyTorch({ model: values.model, out: values.out });
    const { checkpoint, config } = run;
    const state =
      checkpoint === undefined
        ? 'without a checkpoint'
        : `after epoch ${checkpoint.epochsDone}${checkpoint.stepsDone > 0 ? `, step ${checkpoint.stepsDone}` : ''} of ${config.epochs}, with Adam's state`;
    if (note !== undefined) console.log(`Note: ${note}`);
    console.log(`Exported ${values.model} (${config.model}, ${state}) to ${values.out}: ${files.join(', ')}`);
    console.log(
      `Continue it: cd ${values.out} && python3 launch.py --nproc-per-node 2 train_ddp.py${checkpoint === undefined ? ' --epochs N' : ''} (README.md: on several machines)`,
    );
  } catch (error) {
    // Nothing half-written is left looking like a result: the directory was new or empty.
    for (const name of EXPORT_FILES) await rm(join(values.out, name), { force: true });
    await cleanUp();
    throw error;
  }
}

/** Results never go over another run's files: DIR2 must be new or empty. */
async function refuseNonEmpty(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => []);
  if (entries.length > 0) throw new OptionError(`--out "${dir}" is not empty; pick a new directory`);
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
