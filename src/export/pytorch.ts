import type * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CHECKPOINT_FILE, type Checkpoint, readCheckpoint } from '../coordinator/checkpoint.js';
import type { EpochLog, TrainConfig } from '../coordinator/config.js';
import { DEFAULTS } from '../coordinator/options.js';
import { dataSha256 } from '../data/data-hash.js';
import type { Dataset, ImageFolderOrigin, ResizeMode } from '../data/dataset.js';
import { isImageFolder, loadImageFolder } from '../data/image-folder.js';
import { DataError, OptionError, quoteUntrusted } from '../errors.js';
import { findFileInside, type OutputFile, readFileInside, writeFilesAtomically } from '../files.js';
import { loadModel } from '../model/files.js';
import { importSequential } from '../model/keras.js';
import { checkModelMetadata, type ModelMetadata, modelMetadata } from '../model/metadata.js';
import { DAMAGED } from '../model/model-json.js';
import { kindOf } from '../model/kinds.js';
import { buildNetwork, type Network } from '../model/network.js';
import { formatLayer, formatLayers, parseLayers } from '../model/spec.js';
import { ADAM_DEFAULTS } from '../optimizer/adam.js';
import { dataFiles, runDataFiles } from './run-data.js';
import {
  CHECKPOINT_SAFETENSORS,
  checkHistory,
  checkTrainConfig,
  type PyTorchRun,
  RUN_JSON,
  type RunData,
  runFiles,
  WEIGHTS_FILE,
} from './run-folder.js';

/**
 * `npm run export -- --format pytorch`: a run of ours as a PyTorch folder that continues it under
 * DistributedDataParallel. The tensors and the run's state are the run folder's files (see
 * run-folder.ts); beside them go the network as a torch module (model.py, written from the layer
 * list: each layer kind gives its module, see LayerKind.torch), the training script
 * (train_ddp.py), a launcher for where torchrun does not run (launch.py) and a README. The Python
 * files are templates in ./pytorch/, shipped with the package.
 *
 * A run on a folder of pictures takes its data along: the folder is decoded again as the run
 * decoded it (the size, channels, fitting and validation split it recorded), checked against the
 * run's data hash, and written as IDX files (run-data.ts), so that train_ddp.py and the import read
 * the very pixels the run was trained on, split as they were, with no decoder of their own.
 */

const TEMPLATES = new URL('./pytorch/', import.meta.url);
const template = (name: string) => readFileSync(new URL(name, TEMPLATES), 'utf8');

/** The scripts, copied as they are. */
const SCRIPT_FILES = ['train_ddp.py', 'launch.py'] as const;

/** Every file an export may write. */
export const EXPORT_FILES = [
  ...new Set([...runDataFiles(1), ...runDataFiles(3)]),
  CHECKPOINT_SAFETENSORS,
  WEIGHTS_FILE,
  RUN_JSON,
  'model.py',
  ...SCRIPT_FILES,
  'README.md',
] as const;

/** model.py for `network`: the template, with its layers, image size and channels (and class names, when known) filled in. */
export function modelPy(network: Network, classNames?: readonly string[]): string {
  const last = network.layers.length - 1;
  const modules = network.layers.map(
    (layer) =>
      `${kindOf(layer.spec).torch.module(layer)},  # ${layer.index}: ${formatLayer(layer.spec, layer.index === last)}`,
  );
  const [height, width, channels] = network.input;
  return template('model.py')
    .replace('"__LAYERS__"', JSON.stringify(formatLayers(network.layers.map((layer) => layer.spec))))
    .replace('__HEIGHT__, __WIDTH__, __CHANNELS__, __CLASSES__', `${height}, ${width}, ${channels}, ${network.classes}`)
    .replace('"__CLASS_NAMES__"', classNames === undefined ? 'None' : JSON.stringify(classNames))
    .replace('__MODULES__', modules.join('\n            '));
}

export interface ExportOptions {
  /** A directory written by `npm run train` (or `saveModel`): model.json + weights.bin, and checkpoint.bin when there is one. */
  readonly model: string;
  /** Where the PyTorch folder goes: it must exist and be empty (the command line makes it). */
  readonly out: string;
  /**
   * For a run on a folder of pictures: where the folder is (default: where metrics.json says the
   * run read it), and how its pictures were made into images, each by default what the run
   * recorded. Given for a run without a metrics.json (one stopped before its end), or to check.
   */
  readonly pictures?: PictureOptions;
}

export interface PictureOptions {
  readonly dir?: string;
  readonly imageSize?: { readonly height: number; readonly width: number };
  readonly channels?: 1 | 3;
  readonly resize?: ResizeMode;
  readonly validationSplit?: number;
  /** Where decoded pictures are kept (see loadImageFolder). @default the folder's .image-cache */
  readonly cacheDir?: string | false;
  /** @default true when the run recorded its data's hash (which then decides), else false */
  readonly skipBadImages?: boolean;
}

export interface ExportResult {
  readonly run: PyTorchRun;
  /** The files written into `out`, in order. */
  readonly files: readonly string[];
  /** Why a checkpoint.bin was left out, when one was. */
  readonly note: string | undefined;
  /** For a run on a folder of pictures: the data written beside the run, as decoded from the folder. */
  readonly pictures: Dataset | undefined;
}

/**
 * Writes the PyTorch folder of the run in `options.model` into `options.out`. Everything is read
 * and checked first (the run, and a folder of pictures decoded and compared with the run's hash),
 * so that a failure leaves `out` as it was.
 */
export async function exportPyTorch(options: ExportOptions): Promise<ExportResult> {
  const saved = await readRunDirectory(options.model);
  const pictures = await picturesOf(saved, options);
  const { run, note } = runOf(saved, pictures);
  const files: OutputFile[] = [
    ...(pictures === undefined ? [] : dataFiles(pictures.data)),
    ...runFiles(run),
    { name: 'model.py', data: modelPy(run.network, run.data.metadata?.classNames) },
    ...SCRIPT_FILES.map((name) => ({ name, data: template(name) })),
    { name: 'README.md', data: readme(run) },
  ];
  writeFilesAtomically(options.out, files);
  return { run, files: files.map((file) => file.name), note, pictures: pictures?.data };
}

/** The README of the folder: how to continue the run here and on a cluster, with the run's numbers. */
function readme(run: PyTorchRun): string {
  const { checkpoint, config } = run;
  const where =
    checkpoint === undefined
      ? `The run was exported without a checkpoint: \`train_ddp.py --epochs N\` starts a new run of N epochs from its weights, with its settings (Adam's moments start at zero, the shuffles from the seed, as \`train({ model })\` does with a \`tf.Sequential\`).`
      : `The run was exported after epoch ${checkpoint.epochsDone}${checkpoint.stepsDone > 0 ? `, step ${checkpoint.stepsDone}` : ''} of ${config.epochs}, with Adam's state: \`train_ddp.py\` continues it to the end by default.`;
  const [height, width, channels] = run.network.input;
  const data =
    run.data.pictures === undefined
      ? 'the four IDX files of Fashion-MNIST (or those the run was trained on), found in `--data DIR`, `$FASHION_MNIST_DIR`, `./data/fashion-mnist` or `/usr/share/datasets/fashion-mnist` (`apt-get install dataset-fashion-mnist` on Debian)'
      : `here, the pictures of \`${run.data.pictures.folder}\` as the run decoded, fitted and split them, ${height}x${width}x${channels} images in the four IDX files \`${runDataFiles(channels).join('`, `')}\`, which train_ddp.py reads by default`;
  const sha =
    run.data.sha256 === undefined
      ? ''
      : `; train_ddp.py checks that their SHA-256 is the run's, \`${run.data.sha256}\``;
  return template('README.md')
    .replace('{{DATA}}', `${data}${sha}.`)
    .replace('{{LAYERS}}', config.model)
    .replace('{{WHERE}}', where)
    .replace('{{BATCH}}', String(config.batchSize));
}

/** A run directory of ours, read and checked, before its data is known. */
interface SavedRun {
  readonly dir: string;
  readonly model: SavedModel | undefined;
  readonly checkpoint: Checkpoint | undefined;
  readonly metrics: SavedMetrics | undefined;
}

interface SavedModel {
  readonly network: Network;
  readonly params: Float32Array;
  readonly state: Float32Array;
  readonly metadata: ModelMetadata | undefined;
}

/** What a run's metrics.json says: its settings and history, and what `npm run train` recorded of its data. */
interface SavedMetrics {
  readonly config: TrainConfig;
  readonly history: EpochLog[];
  /** As given to --data: a folder of pictures when `metadata.imageFolder` is set. */
  readonly data: string | undefined;
  readonly sha256: string | undefined;
  readonly metadata: ModelMetadata | undefined;
}

/**
 * A run directory of ours: the model (model.json and weights.bin, checked as loadModel checks
 * them), its metrics.json, and checkpoint.bin.
 */
async function readRunDirectory(dir: string): Promise<SavedRun> {
  const hasModel = (await findFileInside(dir, 'model.json', dir)) !== undefined;
  const hasCheckpoint = (await findFileInside(dir, CHECKPOINT_FILE, dir)) !== undefined;
  if (!hasModel && !hasCheckpoint) {
    throw new DataError(`${dir}: no model.json or ${CHECKPOINT_FILE} in it; pass a directory written by npm run train`);
  }
  const checkpoint = hasCheckpoint ? await readCheckpoint(dir) : undefined;
  const model = hasModel ? await modelOf(dir, join(dir, 'model.json')) : undefined;
  return { dir, model, checkpoint, metrics: await metricsOf(dir, model?.network) };
}

/**
 * The run as a PyTorch run: with checkpoint.bin when it holds the model's state (or there is no
 * model yet, as after an interrupted run). A checkpoint of another state (an earlier epoch's,
 * written by --checkpoint-every) is left out, and said so. `pictures`, the run's decoded folder,
 * gives the images' shape when there is no model.json to say it.
 */
function runOf(saved: SavedRun, pictures: Pictures | undefined): { run: PyTorchRun; note: string | undefined } {
  const { model, checkpoint, metrics } = saved;
  const metadata = model?.metadata ?? metrics?.metadata ?? (pictures && modelMetadata(pictures.data));
  const data: RunData = {
    metadata,
    sha256: metrics?.sha256 ?? (pictures && dataSha256(pictures.data)),
    pictures: pictures && { folder: resolve(pictures.dir) },
  };
  if (checkpoint !== undefined && (model === undefined || sameState(model, checkpoint))) {
    const image = metadata?.image ?? { height: 28, width: 28, channels: 1 };
    const network = model?.network ?? checkpointNetwork(checkpoint, image, join(saved.dir, CHECKPOINT_FILE));
    const run = {
      network,
      params: checkpoint.params,
      state: checkpoint.state,
      config: checkpoint.config,
      history: checkpoint.history,
      checkpoint,
      data,
    };
    return { run, note: undefined };
  }
  const found = model as SavedModel;
  const config = metrics?.config ?? defaultConfig(found.network);
  const note =
    checkpoint === undefined
      ? undefined
      : `${CHECKPOINT_FILE} holds the run after epoch ${checkpoint.epochsDone}, step ${checkpoint.stepsDone}, not the saved model: the model is exported without it (no Adam state)`;
  const run = {
    network: found.network,
    params: found.params,
    state: found.state,
    config,
    history: metrics?.history ?? [],
    checkpoint: undefined,
    data,
  };
  return { run, note };
}

/** A run's folder of pictures, decoded, and where it is. */
interface Pictures {
  readonly data: Dataset;
  readonly dir: string;
}

/**
 * For a run on a folder of pictures, the folder decoded as the run decoded it, and checked to be
 * the run's data: its hash (or, for a run without metrics.json, the checkpoint's count of training
 * images), its class names, its images' shape. Undefined for a run on IDX files (Fashion-MNIST),
 * which train_ddp.py reads where they are.
 */
async function picturesOf(saved: SavedRun, options: ExportOptions): Promise<Pictures | undefined> {
  const given = options.pictures ?? {};
  const recorded = saved.model?.metadata ?? saved.metrics?.metadata;
  const origin: ImageFolderOrigin | undefined = recorded?.imageFolder;
  if (origin === undefined && given.dir === undefined) {
    const flags = Object.entries(given)
      .filter(([, value]) => value !== undefined)
      .map(([key]) => key);
    if (flags.length > 0) {
      throw new OptionError(
        `${saved.dir} was not trained on a folder of pictures: ${flags.join(', ')} apply to one (--data FOLDER)`,
      );
    }
    return undefined;
  }
  const dir = given.dir ?? saved.metrics?.data;
  if (dir === undefined) {
    throw new OptionError(
      `${saved.dir} was trained on a folder of pictures, and has no metrics.json that says where: pass --data FOLDER (and --image-size, --channels, --resize, --validation-split as the run had them)`,
    );
  }
  if (!isImageFolder(dir)) {
    const why =
      given.dir === undefined
        ? `the run read its pictures from ${quoteUntrusted(dir)} (${join(saved.dir, 'metrics.json')}), which has no train/ folder now: pass --data with the folder where they are`
        : `--data ${quoteUntrusted(dir)} has no train/ folder: the export takes --data for a run on a folder of pictures (train_ddp.py --data DIR reads IDX files)`;
    throw given.dir === undefined ? new DataError(why) : new OptionError(why);
  }
  const config = saved.checkpoint?.config ?? saved.metrics?.config;
  const split = given.validationSplit ?? origin?.validationSplit?.fraction;
  const pictures = await loadImageFolder({
    dir,
    imageSize: given.imageSize ?? recorded?.image,
    channels: given.channels ?? (recorded?.image.channels as 1 | 3 | undefined),
    resize: given.resize ?? origin?.resize,
    validationSplit: split,
    seed: origin?.validationSplit?.seed ?? config?.seed ?? DEFAULTS.seed,
    cacheDir: given.cacheDir,
    skipBadImages: given.skipBadImages ?? saved.metrics?.sha256 !== undefined,
  });
  const { summary: _, ...data } = pictures;
  const made = `${dir}'s pictures, made into ${data.height}x${data.width}x${data.channels} images`;
  const sha256 = saved.metrics?.sha256;
  if (sha256 !== undefined && dataSha256(data) !== sha256) {
    throw new DataError(
      `${made} as the run's were, are not what it was trained on (sha256 ${dataSha256(data).slice(0, 12)}…, and ${join(saved.dir, 'metrics.json')} has ${sha256.slice(0, 12)}…): pass --data with the run's own folder, as it was`,
    );
  }
  if (recorded !== undefined && String(recorded.classNames) !== String(data.classNames)) {
    throw new DataError(`${made}: its classes are not the run's (${recorded.classNames.join(', ')})`);
  }
  const checkpoint = saved.checkpoint;
  if (checkpoint !== undefined && checkpoint.trainCount !== data.train.count) {
    throw new DataError(
      `${made}: ${data.train.count} training images, and ${join(saved.dir, CHECKPOINT_FILE)} was made on ${checkpoint.trainCount}: pass --data and the flags the run had`,
    );
  }
  const input = saved.model?.network.input;
  if (input !== undefined && String(input) !== String([data.height, data.width, data.channels])) {
    throw new DataError(
      `${made}, and the model takes ${input.join('x')}: pass the --image-size and --channels the run had`,
    );
  }
  return { data, dir };
}

async function modelOf(dir: string, jsonPath: string): Promise<SavedModel> {
  const model = await loadModel(dir);
  try {
    const [, height, width, channels = 1] = model.inputs[0].shape as number[];
    const classes = model.outputs[0].shape[1] as number;
    const image = { height, width, channels };
    const { network, params, state } = importSequential(model as tf.Sequential, image, classes);
    const metadata = checkModelMetadata(model.getUserDefinedMetadata(), jsonPath, DAMAGED);
    return { network, params, state, metadata };
  } catch (error) {
    if (!(error instanceof OptionError)) throw error;
    throw new DataError(`${jsonPath}: ${error.message.replace(/^model: /, '')}`);
  } finally {
    model.dispose();
  }
}

/** Whether the checkpoint holds the model's own state: the same layers, the same parameters and layers' state, bit for bit. */
function sameState(model: SavedModel, checkpoint: Checkpoint): boolean {
  const bits = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return (
    checkpoint.config.model === formatLayers(model.network.layers.map((layer) => layer.spec)) &&
    Buffer.compare(bits(model.params), bits(checkpoint.params)) === 0 &&
    Buffer.compare(bits(model.state), bits(checkpoint.state)) === 0
  );
}

function checkpointNetwork(
  checkpoint: Checkpoint,
  image: { readonly height: number; readonly width: number; readonly channels: number },
  file: string,
): Network {
  try {
    const specs = parseLayers(checkpoint.config.model, `${file}: model`);
    const last = specs.at(-1);
    const network = buildNetwork(specs, image, last?.kind === 'dense' ? last.units : 0, `${file}: model`);
    if (network.paramCount !== checkpoint.params.length) {
      throw new OptionError(
        `${file}: ${checkpoint.params.length} parameters, where its layers take ${network.paramCount} on ${image.height}x${image.width}x${image.channels} images; ` +
          'export the directory with its model.json, or, for a run on a folder of pictures, pass --data FOLDER and the flags the run had',
      );
    }
    if (network.stateCount !== checkpoint.state.length) {
      throw new OptionError(
        `${file}: ${checkpoint.state.length} values of the layers' state, where its layers have ${network.stateCount}; export the directory with its model.json`,
      );
    }
    return network;
  } catch (error) {
    throw error instanceof OptionError ? new DataError(error.message) : error;
  }
}

/** The trainer's defaults, for a model without a metrics.json. */
function defaultConfig(network: Network): TrainConfig {
  return {
    workers: 1,
    epochs: DEFAULTS.epochs,
    batchSize: DEFAULTS.batchSize,
    seed: DEFAULTS.seed,
    adam: { ...ADAM_DEFAULTS, learningRate: DEFAULTS.learningRate },
    schedule: DEFAULTS.schedule,
    model: formatLayers(network.layers.map((layer) => layer.spec)),
  };
}

/**
 * A run's metrics.json, checked (its layers against the model's, when there is one); undefined
 * without one.
 */
async function metricsOf(dir: string, network: Network | undefined): Promise<SavedMetrics | undefined> {
  const path = join(dir, 'metrics.json');
  const file = await findFileInside(dir, 'metrics.json', path);
  if (file === undefined) return undefined;
  const bad = (why: string) => new DataError(`${path}: ${why}; ${DAMAGED}`);
  if (file.size > 64 << 20) throw bad(`${file.size} bytes, more than a metrics.json may have`);
  const bytes = new Uint8Array(file.size);
  await readFileInside(file, bytes);
  let metrics: unknown;
  try {
    metrics = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw bad('not JSON text');
  }
  const { config: rawConfig, epochs } = (metrics ?? {}) as { config?: unknown; epochs?: unknown };
  const config = checkTrainConfig(rawConfig, 'config', bad);
  const model = network === undefined ? config.model : formatLayers(network.layers.map((layer) => layer.spec));
  if (config.model !== model) throw bad(`config.model is ${config.model}, but model.json's layers are ${model}`);
  // What npm run train records of the data (runs of the library, or older ones, may lack it).
  const raw = rawConfig as Record<string, unknown>;
  const data = raw.data;
  if (data !== undefined && data !== null && (typeof data !== 'string' || data === '')) {
    throw bad(`config.data is ${quoteUntrusted(String(data))}, expected the --data directory or null`);
  }
  const sha256 = raw.dataSha256;
  if (sha256 !== undefined && !(typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256))) {
    throw bad('config.dataSha256 is not 64 hexadecimal digits');
  }
  const metadata =
    raw.classNames === undefined
      ? undefined
      : checkModelMetadata(
          { classNames: raw.classNames, image: raw.image, imageFolder: raw.imageFolder ?? undefined },
          `${path}: config`,
          DAMAGED,
        );
  return {
    config,
    history: checkHistory(epochs, 'epochs', bad),
    data: (data as string | null | undefined) ?? undefined,
    sha256,
    metadata,
  };
}
