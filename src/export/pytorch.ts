import type * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKPOINT_FILE, type Checkpoint, readCheckpoint } from '../coordinator/checkpoint.js';
import type { EpochLog, TrainConfig } from '../coordinator/config.js';
import { DEFAULTS } from '../coordinator/options.js';
import { DataError, OptionError } from '../errors.js';
import { findFileInside, type OutputFile, readFileInside, writeFilesAtomically } from '../files.js';
import { loadModel } from '../model/files.js';
import { importSequential } from '../model/keras.js';
import { DAMAGED } from '../model/model-json.js';
import { kindOf } from '../model/kinds.js';
import { buildNetwork, type Network } from '../model/network.js';
import { formatLayer, formatLayers, parseLayers } from '../model/spec.js';
import { ADAM_DEFAULTS } from '../optimizer/adam.js';
import {
  CHECKPOINT_SAFETENSORS,
  checkHistory,
  checkTrainConfig,
  type PyTorchRun,
  RUN_JSON,
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
 */

const TEMPLATES = new URL('./pytorch/', import.meta.url);
const template = (name: string) => readFileSync(new URL(name, TEMPLATES), 'utf8');

/** The scripts, copied as they are. */
const SCRIPT_FILES = ['train_ddp.py', 'launch.py'] as const;

/** Every file an export may write. */
export const EXPORT_FILES = [
  CHECKPOINT_SAFETENSORS,
  WEIGHTS_FILE,
  RUN_JSON,
  'model.py',
  ...SCRIPT_FILES,
  'README.md',
] as const;

/** model.py for `network`: the template, with its layers and image size filled in. */
export function modelPy(network: Network): string {
  const last = network.layers.length - 1;
  const modules = network.layers.map(
    (layer) =>
      `${kindOf(layer.spec).torch.module(layer)},  # ${layer.index}: ${formatLayer(layer.spec, layer.index === last)}`,
  );
  const [height, width] = network.input;
  return template('model.py')
    .replace('"__LAYERS__"', JSON.stringify(formatLayers(network.layers.map((layer) => layer.spec))))
    .replace('__HEIGHT__, __WIDTH__, __CLASSES__', `${height}, ${width}, ${network.classes}`)
    .replace('__MODULES__', modules.join('\n            '));
}

export interface ExportOptions {
  /** A directory written by `npm run train` (or `saveModel`): model.json + weights.bin, and checkpoint.bin when there is one. */
  readonly model: string;
  /** Where the PyTorch folder goes: it must exist and be empty (the command line makes it). */
  readonly out: string;
}

export interface ExportResult {
  readonly run: PyTorchRun;
  /** The files written into `out`, in order. */
  readonly files: readonly string[];
  /** Why a checkpoint.bin was left out, when one was. */
  readonly note: string | undefined;
}

/** Writes the PyTorch folder of the run in `options.model` into `options.out`. */
export async function exportPyTorch(options: ExportOptions): Promise<ExportResult> {
  const { run, note } = await readRunDirectory(options.model);
  const files: OutputFile[] = [
    ...runFiles(run),
    { name: 'model.py', data: modelPy(run.network) },
    ...SCRIPT_FILES.map((name) => ({ name, data: template(name) })),
    { name: 'README.md', data: readme(run) },
  ];
  writeFilesAtomically(options.out, files);
  return { run, files: files.map((file) => file.name), note };
}

/** The README of the folder: how to continue the run here and on a cluster, with the run's numbers. */
function readme(run: PyTorchRun): string {
  const { checkpoint, config } = run;
  const where =
    checkpoint === undefined
      ? `The run was exported without a checkpoint: \`train_ddp.py --epochs N\` starts a new run of N epochs from its weights, with its settings (Adam's moments start at zero, the shuffles from the seed, as \`train({ model })\` does with a \`tf.Sequential\`).`
      : `The run was exported after epoch ${checkpoint.epochsDone}${checkpoint.stepsDone > 0 ? `, step ${checkpoint.stepsDone}` : ''} of ${config.epochs}, with Adam's state: \`train_ddp.py\` continues it to the end by default.`;
  return template('README.md')
    .replace('{{LAYERS}}', config.model)
    .replace('{{WHERE}}', where)
    .replace('{{BATCH}}', String(config.batchSize));
}

/**
 * A run directory of ours as a PyTorch run: the model (model.json and weights.bin, checked as
 * loadModel checks them) and its metrics.json's settings and history, and checkpoint.bin when it
 * holds that model's state (or there is no model yet, as after an interrupted run). A checkpoint of
 * another state (an earlier epoch's, written by --checkpoint-every) is left out, and said so.
 */
async function readRunDirectory(dir: string): Promise<{ run: PyTorchRun; note: string | undefined }> {
  const jsonPath = join(dir, 'model.json');
  const hasModel = (await findFileInside(dir, 'model.json', dir)) !== undefined;
  const hasCheckpoint = (await findFileInside(dir, CHECKPOINT_FILE, dir)) !== undefined;
  if (!hasModel && !hasCheckpoint) {
    throw new DataError(`${dir}: no model.json or ${CHECKPOINT_FILE} in it; pass a directory written by npm run train`);
  }
  const checkpoint = hasCheckpoint ? await readCheckpoint(dir) : undefined;
  const model = hasModel ? await modelOf(dir, jsonPath) : undefined;
  if (checkpoint !== undefined && (model === undefined || sameState(model, checkpoint))) {
    const image = model?.image ?? { height: 28, width: 28 };
    const network = checkpointNetwork(checkpoint, image, join(dir, CHECKPOINT_FILE));
    const run = {
      network,
      params: checkpoint.params,
      state: checkpoint.state,
      config: checkpoint.config,
      history: checkpoint.history,
      checkpoint,
    };
    return { run, note: undefined };
  }
  const found = model as NonNullable<typeof model>;
  const { config, history } = await metricsOf(dir, found.network);
  const note =
    checkpoint === undefined
      ? undefined
      : `${CHECKPOINT_FILE} holds the run after epoch ${checkpoint.epochsDone}, step ${checkpoint.stepsDone}, not the saved model: the model is exported without it (no Adam state)`;
  const { network, params, state } = found;
  return { run: { network, params, state, config, history, checkpoint: undefined }, note };
}

interface SavedModel {
  readonly network: Network;
  readonly params: Float32Array;
  readonly state: Float32Array;
  readonly image: { readonly height: number; readonly width: number };
}

async function modelOf(dir: string, jsonPath: string): Promise<SavedModel> {
  const model = await loadModel(dir);
  try {
    const [, height, width] = model.inputs[0].shape as number[];
    const classes = model.outputs[0].shape[1] as number;
    const image = { height, width };
    const { network, params, state } = importSequential(model as tf.Sequential, image, classes);
    return { network, params, state, image };
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
  image: { readonly height: number; readonly width: number },
  file: string,
): Network {
  try {
    const specs = parseLayers(checkpoint.config.model, `${file}: model`);
    const last = specs.at(-1);
    const network = buildNetwork(specs, image, last?.kind === 'dense' ? last.units : 0, `${file}: model`);
    if (network.paramCount !== checkpoint.params.length) {
      throw new OptionError(
        `${file}: ${checkpoint.params.length} parameters, where its layers take ${network.paramCount} on ${image.height}x${image.width} images; export the directory with its model.json`,
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

/** The settings and history in a run's metrics.json; without one, the trainer's defaults and no history. */
async function metricsOf(dir: string, network: Network): Promise<{ config: TrainConfig; history: EpochLog[] }> {
  const path = join(dir, 'metrics.json');
  const model = formatLayers(network.layers.map((layer) => layer.spec));
  const file = await findFileInside(dir, 'metrics.json', path);
  if (file === undefined) {
    const config: TrainConfig = {
      workers: 1,
      epochs: DEFAULTS.epochs,
      batchSize: DEFAULTS.batchSize,
      seed: DEFAULTS.seed,
      adam: { ...ADAM_DEFAULTS, learningRate: DEFAULTS.learningRate },
      schedule: DEFAULTS.schedule,
      model,
    };
    return { config, history: [] };
  }
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
  if (config.model !== model) throw bad(`config.model is ${config.model}, but model.json's layers are ${model}`);
  return { config, history: checkHistory(epochs, 'epochs', bad) };
}
