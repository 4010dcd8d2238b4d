/** `npm run export`: a run of `npm run train` as a PyTorch folder that continues it under DistributedDataParallel. */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { IMAGE_FOLDER_FLAGS, parseImageFolderFlags } from '../src/cli/data.js';
import { parseFlags } from '../src/cli/flags.js';
import { prepareOutputDir } from '../src/cli/output.js';
import { isUserError, OptionError } from '../src/errors.js';
import { EXPORT_FILES, exportPyTorch } from '../src/export/pytorch.js';

const USAGE = `Usage: npm run export -- --model DIR --format pytorch --out DIR2 [--data FOLDER]

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
  train-images-idx3-ubyte  for a run on a folder of pictures: its images as it trained on them
  ...                      (decoded, fitted, split), as IDX files (idx4 for colour), 4 in all
npm run import -- --from DIR2 --out DIR3 brings it back.

  --model DIR      the run to export
  --format pytorch the only format so far
  --out DIR2       a new or empty directory
  --data FOLDER    for a run on a folder of pictures: where the folder is (default: where the
                   run read it, from its metrics.json). Its pictures are decoded as the run's
                   were and must be the run's (its data hash). For a run stopped before it
                   wrote metrics.json, give the run's --image-size, --channels, --resize,
                   --validation-split too (--cache and --skip-bad-images as for npm run train)`;

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    model: { type: 'string' },
    format: { type: 'string' },
    out: { type: 'string' },
    data: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    ...IMAGE_FOLDER_FLAGS,
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
  if (values.data === '') throw new OptionError('--data needs a folder of pictures, got ""');
  const folder = parseImageFolderFlags(values);
  const { given: _, ...settings } = folder;
  const pictures = {
    ...settings,
    dir: values.data,
    skipBadImages: values['skip-bad-images'] === true ? true : undefined,
  };
  await refuseNonEmpty(values.out);
  const cleanUp = await prepareOutputDir(values.out);
  try {
    const exported = await exportPyTorch({ model: values.model, out: values.out, pictures });
    const { run, files, note } = exported;
    const { checkpoint, config } = run;
    const state =
      checkpoint === undefined
        ? 'without a checkpoint'
        : `after epoch ${checkpoint.epochsDone}${checkpoint.stepsDone > 0 ? `, step ${checkpoint.stepsDone}` : ''} of ${config.epochs}, with Adam's state`;
    if (note !== undefined) console.log(`Note: ${note}`);
    console.log(`Exported ${values.model} (${config.model}, ${state}) to ${values.out}: ${files.join(', ')}`);
    if (exported.pictures !== undefined && run.data.pictures !== undefined) {
      const { train, test, height, width, channels } = exported.pictures;
      console.log(
        `Data: the pictures of ${run.data.pictures.folder} as the run trained on them, ${train.count} training and ${test.count} test images of ${height}x${width}x${channels}, sha256 ${run.data.sha256}`,
      );
    }
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
