import { join } from 'node:path';
import type { Checkpoint } from '../coordinator/checkpoint.js';
import type { EpochLog, TrainConfig } from '../coordinator/config.js';
import { checkNumber, checkSchedule, type LimitedOption } from '../coordinator/options.js';
import { checkAugment } from '../data/augment.js';
import { DataError, OptionError, quoteUntrusted } from '../errors.js';
import { findFileInside, type OutputFile, readFileInside } from '../files.js';
import { checkModelMetadata, type ModelMetadata } from '../model/metadata.js';
import { buildNetwork, type Network } from '../model/network.js';
import { formatLayers, parseLayers } from '../model/spec.js';
import { decodeSafetensors, encodeSafetensors, SAFETENSORS_LIMITS, type Tensor, tensorValues } from './safetensors.js';
import { fromTorch, networkBuffers, networkTensors, stateFromTorch, stateToTorch, toTorch } from './torch-layout.js';

/**
 * A run as a PyTorch folder: what `npm run export` writes, train_ddp.py continues and writes again,
 * and `npm run import` reads back. Three files hold the run (the scripts beside them are the
 * export's, see pytorch.ts):
 *
 *   model.safetensors        the module's state_dict: the parameters, `layers.<i>.weight` and
 *                            `.bias`, in PyTorch's layouts, and the layers' state that is not
 *                            trained, as the modules' buffers (see TorchForm.buffers)
 *   checkpoint.safetensors   with a checkpoint: Adam's moments `adam.m.<name>`, `adam.v.<name>`,
 *                            laid out as the parameters, and the epoch's order `epoch.order`
 *   run.json                 the layers, the settings, the progress and the generator's state, the
 *                            history, what the data is: everything that is not a tensor, as JSON
 *
 * A run on a folder of pictures has its data beside them, as IDX files (see run-data.ts).
 *
 * Each safetensors file carries the Adam step it was written at (metadata `adamSteps`), as run.json
 * does, so that files from two saves are never taken for one. The folder comes from another
 * program, maybe another machine: it is read as untrusted input, as model directories are.
 *
 * Versions: 2 added the buffers; a version 1 folder, written when no layer had state, is read as
 * one without them. run.json's `data` (what the run was trained on: the model's metadata, the
 * data's hash, the folder of pictures) came within version 1, as a key that readers of the time
 * passed over: a version 1 folder may lack it, and then records nothing of its data (no hash to
 * check it against, no metadata to restore). Every writer of version 2 (the export, train_ddp.py)
 * writes it, with nulls for what it does not know, so a version 2 run.json without it is damaged.
 */

export const RUN_FORMAT = 'fashion-mnist-parallel/pytorch';
export const RUN_VERSION = 2;
/** The versions readPyTorchRun reads. */
const READ_VERSIONS: readonly unknown[] = [1, RUN_VERSION];
export const RUN_JSON = 'run.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const CHECKPOINT_SAFETENSORS = 'checkpoint.safetensors';

/** The end of a message about a run folder that is not what the export or train_ddp.py wrote. */
export const RUN_DAMAGED = 'the PyTorch run folder is damaged: export the run again, or copy a folder whole';

export const RUN_LIMITS = {
  /** run.json: its history takes about 150 bytes an epoch. */
  jsonBytes: 64 << 20,
  /** Per-shard totals of the epoch in progress: 3 numbers for each of up to this many ranks. */
  ranks: 1 << 16,
};

/** A run, in the project's terms: the network and its parameters, settings, history and, with a checkpoint, all the rest. */
export interface PyTorchRun {
  readonly network: Network;
  readonly params: Float32Array;
  /** The layers' state that is not trained (see Network.stateCount). */
  readonly state: Float32Array;
  readonly config: TrainConfig;
  readonly history: readonly EpochLog[];
  /** Adam's state, the epoch's order and totals, the generator: a run that continues exactly. */
  readonly checkpoint: Checkpoint | undefined;
  readonly data: RunData;
}

/** What the run was trained on, as far as its directory said. */
export interface RunData {
  /** What the model records about its images (model.json's userDefinedMetadata): class names, size, fitting. */
  readonly metadata: ModelMetadata | undefined;
  /** SHA-256 of the run's data (see dataSha256): train_ddp.py and the import check theirs against it. */
  readonly sha256: string | undefined;
  /** For a run on a folder of pictures, where they were: the folder holds them, decoded, as IDX files. */
  readonly pictures: { readonly folder: string } | undefined;
}

export const NO_RUN_DATA: RunData = { metadata: undefined, sha256: undefined, pictures: undefined };

/** run.json as written. */
interface RunJson {
  readonly format: typeof RUN_FORMAT;
  readonly version: typeof RUN_VERSION;
  /** The layer list in the project's grammar, on images `[height, width, channels]` (NHWC), for `classes` classes. */
  readonly model: { readonly layers: string; readonly input: readonly number[]; readonly classes: number };
  readonly config: TrainConfig;
  /** Null when the run was exported without a checkpoint: train_ddp.py then starts a new run from its weights. */
  readonly state: {
    readonly trainCount: number;
    readonly epochsDone: number;
    readonly stepsDone: number;
    readonly adamSteps: number;
    readonly rngState: number;
    readonly stats: readonly number[];
  } | null;
  readonly history: readonly EpochLog[];
  /** Absent only in version 1 folders of exports from before it (see above). */
  readonly data?: {
    readonly metadata: ModelMetadata | null;
    readonly sha256: string | null;
    readonly pictures: { readonly folder: string } | null;
  };
}

/** The run's three files, to be written in this order (run.json last: it names the step the others hold). */
export function runFiles(run: PyTorchRun): OutputFile[] {
  const { network, checkpoint } = run;
  const stamp = { adamSteps: String(checkpoint?.adam.steps ?? 0) };
  const floats = (values: Float32Array, prefix: string) =>
    [...toTorch(network, values)].map(([name, data]): [string, Tensor] => [
      prefix + name,
      { dtype: 'F32', shape: shapes(network).get(name) as number[], data },
    ]);
  const files: OutputFile[] = [];
  if (checkpoint !== undefined) {
    const tensors = new Map([
      ...floats(checkpoint.adam.m, 'adam.m.'),
      ...floats(checkpoint.adam.v, 'adam.v.'),
      ['epoch.order', { dtype: 'I32', shape: [checkpoint.epoch.order.length], data: checkpoint.epoch.order }],
    ]);
    files.push({ name: CHECKPOINT_SAFETENSORS, data: encodeSafetensors(tensors, stamp) });
  }
  const buffers = [...stateToTorch(network, run.state)].map(([name, data]): [string, Tensor] => [
    name,
    { dtype: 'F32', shape: shapes(network).get(name) as number[], data },
  ]);
  files.push({ name: WEIGHTS_FILE, data: encodeSafetensors(new Map([...floats(run.params, ''), ...buffers]), stamp) });
  const [height, width, channels] = network.input;
  const json: RunJson = {
    format: RUN_FORMAT,
    version: RUN_VERSION,
    model: { layers: run.config.model, input: [height, width, channels], classes: network.classes },
    config: run.config,
    state:
      checkpoint === undefined
        ? null
        : {
            trainCount: checkpoint.trainCount,
            epochsDone: checkpoint.epochsDone,
            stepsDone: checkpoint.stepsDone,
            adamSteps: checkpoint.adam.steps,
            rngState: checkpoint.rngState,
            stats: [...checkpoint.epoch.stats],
          },
    history: run.history,
    data: {
      metadata: run.data.metadata ?? null,
      sha256: run.data.sha256 ?? null,
      pictures: run.data.pictures ?? null,
    },
  };
  files.push({ name: RUN_JSON, data: `${JSON.stringify(json, null, 2)}\n` });
  return files;
}

function shapes(network: Network): Map<string, readonly number[]> {
  return new Map([...networkTensors(network), ...networkBuffers(network)].map((tensor) => [tensor.name, tensor.shape]));
}

/**
 * Reads a run folder (`npm run export`'s or train_ddp.py's) and checks all of it before anything
 * uses it: run.json's layers, settings, progress and history; every tensor there, with the dtype
 * and shape the layers give it, and nothing else; finite values; an order that is one of the
 * training images. What fails is a DataError with one line that names the file.
 */
export async function readPyTorchRun(dir: string): Promise<PyTorchRun> {
  const jsonPath = join(dir, RUN_JSON);
  const bad = (file: string) => (why: string) => new DataError(`${file}: ${why}; ${RUN_DAMAGED}`);
  const raw = await readInside(dir, RUN_JSON, jsonPath, RUN_LIMITS.jsonBytes, (size) =>
    bad(jsonPath)(`${size} bytes, more than the ${RUN_LIMITS.jsonBytes} a run.json may have`),
  );
  if (raw === undefined) {
    throw new DataError(`${jsonPath}: no such file; pass a folder written by npm run export or train_ddp.py`);
  }
  const json = parseRunJson(raw, jsonPath, bad(jsonPath));
  const { network, config, history, data } = json;
  const progress = json.state;
  const stamp = String(progress?.adamSteps ?? 0);
  const tensors = networkTensors(network);
  const buffers = networkBuffers(network);

  const weightsPath = join(dir, WEIGHTS_FILE);
  const weightsBytes = (network.paramCount + network.stateCount) * 4;
  const weights = await readSafetensors(dir, WEIGHTS_FILE, weightsPath, weightsBytes, stamp);
  const weightsBad = bad(weightsPath);
  const take = (file: typeof weights, prefix: string, what: string, path: string, wanted = tensors) => {
    const values = new Map<string, Float32Array>();
    for (const tensor of wanted) {
      const name = prefix + tensor.name;
      const data = tensorValues(
        file,
        name,
        { dtype: 'F32', shape: tensor.shape, need: `${tensor.label} needs` },
        bad(path),
      );
      if (!(data as Float32Array).every(Number.isFinite)) {
        throw bad(path)(`${what} ${quoteUntrusted(name)} holds NaN or infinite values`);
      }
      values.set(name, data as Float32Array);
    }
    return (name: string) => values.get(prefix + name) as Float32Array;
  };
  const params = fromTorch(network, take(weights, '', 'tensor', weightsPath));
  const state = stateFromTorch(network, take(weights, '', 'buffer', weightsPath, buffers));
  const names = new Set([...tensors, ...buffers].map((t) => t.name));
  refuseOthers(weights, names, weightsBad, 'no parameter or buffer of the network');

  const checkpointFile = await findFileInside(dir, CHECKPOINT_SAFETENSORS, jsonPath);
  const checkpointPath = join(dir, CHECKPOINT_SAFETENSORS);
  if (progress === undefined) {
    if (checkpointFile !== undefined) {
      throw bad(checkpointPath)('run.json has no checkpoint state, so this file belongs to another save');
    }
    return { network, params, state, config, history, checkpoint: undefined, data };
  }
  if (checkpointFile === undefined) {
    throw bad(jsonPath)(`it has a checkpoint state, but ${CHECKPOINT_SAFETENSORS} is missing`);
  }
  const moments = await readSafetensors(
    dir,
    CHECKPOINT_SAFETENSORS,
    checkpointPath,
    network.paramCount * 8 + progress.trainCount * 4,
    stamp,
  );
  const m = fromTorch(network, take(moments, 'adam.m.', "Adam's moment", checkpointPath));
  const v = fromTorch(network, take(moments, 'adam.v.', "Adam's moment", checkpointPath));
  const order = tensorValues(
    moments,
    'epoch.order',
    {
      dtype: 'I32',
      shape: [progress.trainCount],
      need: `an order of the ${progress.trainCount} training images needs`,
    },
    bad(checkpointPath),
  ) as Int32Array;
  const seen = new Uint8Array(progress.trainCount);
  for (const index of order) {
    if (!(index >= 0 && index < progress.trainCount) || seen[index]++ > 0) {
      throw bad(checkpointPath)(`epoch.order is not an order of the ${progress.trainCount} training images`);
    }
  }
  const expected = new Set(['epoch.order', ...tensors.flatMap((t) => [`adam.m.${t.name}`, `adam.v.${t.name}`])]);
  refuseOthers(moments, expected, bad(checkpointPath), "no part of Adam's state or the epoch");
  return {
    network,
    params,
    state,
    config,
    history,
    data,
    checkpoint: {
      config,
      trainCount: progress.trainCount,
      epochsDone: progress.epochsDone,
      stepsDone: progress.stepsDone,
      history,
      params,
      state,
      adam: { m, v, steps: progress.adamSteps },
      epoch: { order, stats: Float64Array.from(progress.stats) },
      rngState: progress.rngState,
    },
  };
}

function refuseOthers(
  file: { entries: ReadonlyMap<string, unknown> },
  expected: ReadonlySet<string>,
  bad: (why: string) => DataError,
  what: string,
): void {
  for (const name of file.entries.keys()) {
    if (!expected.has(name)) throw bad(`it has a tensor ${quoteUntrusted(name)}, which is ${what}`);
  }
}

/** A file of the folder, read whole once found inside it and no larger than `limit`; undefined when absent. */
async function readInside(
  dir: string,
  name: string,
  namedIn: string,
  limit: number,
  tooLarge: (size: number) => DataError,
): Promise<Uint8Array | undefined> {
  const file = await findFileInside(dir, name, namedIn);
  if (file === undefined) return undefined;
  if (file.size > limit) throw tooLarge(file.size);
  const bytes = new Uint8Array(file.size);
  await readFileInside(file, bytes);
  return bytes;
}

async function readSafetensors(dir: string, name: string, path: string, dataBytes: number, stamp: string) {
  const bad = (why: string) => new DataError(`${path}: ${why}; ${RUN_DAMAGED}`);
  // The tensors' bytes are known from the layers: a larger file is refused before it is read.
  const limit = 8 + SAFETENSORS_LIMITS.headerBytes + dataBytes;
  const bytes = await readInside(dir, name, join(dir, RUN_JSON), limit, (size) =>
    bad(`${size} bytes, more than the ${limit} that this network's tensors and a header can take`),
  );
  if (bytes === undefined) throw new DataError(`${path}: missing; ${RUN_DAMAGED}`);
  const file = decodeSafetensors(bytes, path, RUN_DAMAGED);
  if (file.metadata.adamSteps !== stamp) {
    throw bad(
      `written at Adam step ${quoteUntrusted(String(file.metadata.adamSteps))}, and run.json at ${stamp} ` +
        '(stopped while saving?)',
    );
  }
  return file;
}

interface CheckedRun {
  readonly network: Network;
  readonly config: TrainConfig;
  readonly history: EpochLog[];
  readonly state: NonNullable<RunJson['state']> | undefined;
  readonly data: RunData;
}

function parseRunJson(bytes: Uint8Array, file: string, bad: (why: string) => DataError): CheckedRun {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw bad('not JSON text');
  }
  if (!isObject(json)) throw bad('not a JSON object');
  if (json.format !== RUN_FORMAT || !READ_VERSIONS.includes(json.version)) {
    throw new DataError(
      `${file}: format ${describe(json.format)}, version ${describe(json.version)}; expected ${RUN_FORMAT}, version ${RUN_VERSION}, as npm run export writes`,
    );
  }
  const model = json.model;
  if (!isObject(model) || typeof model.layers !== 'string') throw bad('model.layers is not a layer list');
  const input = model.input;
  if (
    !Array.isArray(input) ||
    input.length !== 3 ||
    ![1, 3].includes(input[2]) ||
    !input.slice(0, 2).every(isDimension)
  ) {
    throw bad(`model.input is ${describe(input)}, expected [height, width, 1 or 3]`);
  }
  if (!(Number.isInteger(model.classes) && (model.classes as number) >= 2 && (model.classes as number) <= 8192)) {
    throw bad(`model.classes is ${describe(model.classes)}, expected a number of classes`);
  }
  const network = asDataError(() => {
    const specs = parseLayers(model.layers as string, `${file}: model.layers`);
    const image = { height: input[0], width: input[1], channels: input[2] };
    return buildNetwork(specs, image, model.classes as number, `${file}: model.layers`);
  });
  if (json.version === 1 && network.stateCount > 0) {
    throw bad(`version 1 holds no layers' state, and ${describe(model.layers)} has some`);
  }
  const config = checkTrainConfig(json.config, 'config', bad);
  if (config.model !== formatLayers(network.layers.map((layer) => layer.spec))) {
    throw bad(`config.model ${describe(config.model)} is not model.layers ${describe(model.layers)}`);
  }
  const history = checkHistory(json.history, 'history', bad);
  if (json.version !== 1 && json.data === undefined)
    throw bad(`data is missing, and a version ${RUN_VERSION} run.json has it`);
  const data = checkRunData(json.data, network, file, bad);
  if (json.state === null) return { network, config, history, state: undefined, data };
  const state = checkState(json.state, config, history, bad);
  return { network, config, history, state, data };
}

/** run.json's `data`, checked against the network: its metadata must describe the network's images and classes. */
function checkRunData(raw: unknown, network: Network, file: string, bad: (why: string) => DataError): RunData {
  // Absent in a version 1 folder of an earlier export (parseRunJson refuses it absent in version 2).
  if (raw === undefined) return NO_RUN_DATA;
  if (!isObject(raw)) throw bad('data is not an object');
  const metadata = raw.metadata === null ? undefined : checkModelMetadata(raw.metadata, file, RUN_DAMAGED);
  if (raw.metadata !== null && metadata === undefined) throw bad('data.metadata is not {classNames, image}');
  if (metadata !== undefined) {
    const { height, width, channels } = metadata.image;
    if (String([height, width, channels]) !== String(network.input) || metadata.classNames.length !== network.classes) {
      throw bad(
        `data.metadata names ${metadata.classNames.length} classes of ${height}x${width}x${channels} images, and the model takes ${network.input.join('x')} for ${network.classes}`,
      );
    }
  }
  const sha256 = raw.sha256;
  if (sha256 !== null && !(typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256))) {
    throw bad(`data.sha256 is ${describe(sha256)}, expected 64 hexadecimal digits or null`);
  }
  const pictures = raw.pictures;
  let folder: string | undefined;
  if (pictures !== null) {
    folder = isObject(pictures) ? (pictures.folder as string) : undefined;
    if (typeof folder !== 'string' || folder === '' || folder.length > 4096 || /[\x00-\x1f\x7f]/.test(folder)) {
      throw bad('data.pictures is not {folder} or null');
    }
  }
  return {
    metadata,
    sha256: sha256 ?? undefined,
    pictures: folder === undefined ? undefined : { folder },
  };
}

function checkState(
  raw: unknown,
  config: TrainConfig,
  history: readonly EpochLog[],
  bad: (why: string) => DataError,
): NonNullable<RunJson['state']> {
  if (!isObject(raw)) throw bad('state is neither null nor an object');
  const integer = (key: string, max: number): number => {
    const value = raw[key];
    if (!(Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= max)) {
      throw bad(`state.${key} is ${describe(value)}, expected an integer from 0 to ${max}`);
    }
    return value as number;
  };
  const trainCount = integer('trainCount', 2 ** 31 - 1);
  if (trainCount === 0) throw bad('state.trainCount is 0: a run has training images');
  const steps = Math.ceil(trainCount / config.batchSize);
  const epochsDone = integer('epochsDone', config.epochs);
  const stepsDone = integer('stepsDone', steps - 1);
  const adamSteps = integer('adamSteps', Number.MAX_SAFE_INTEGER);
  const rngState = integer('rngState', 2 ** 32 - 1);
  if (adamSteps !== epochsDone * steps + stepsDone) {
    throw bad(
      `state.adamSteps is ${adamSteps}, but ${epochsDone} epochs of ${steps} steps and ${stepsDone} more make ${epochsDone * steps + stepsDone}`,
    );
  }
  if (epochsDone === config.epochs && stepsDone > 0) throw bad('state: steps done past the last epoch');
  if (history.length !== epochsDone) {
    throw bad(`history has ${history.length} epochs, and state.epochsDone is ${epochsDone}`);
  }
  const stats = raw.stats;
  if (
    !Array.isArray(stats) ||
    stats.length === 0 ||
    stats.length % 3 !== 0 ||
    stats.length > 3 * RUN_LIMITS.ranks ||
    !stats.every((x) => typeof x === 'number' && Number.isFinite(x))
  ) {
    throw bad('state.stats is not a list of [loss sum, correct, samples] per shard');
  }
  return { trainCount, epochsDone, stepsDone, adamSteps, rngState, stats };
}

/**
 * The settings of a run from a file (run.json, or a run's metrics.json): each checked as the
 * trainer checks its options, and rebuilt with the trainer's own order of keys.
 */
export function checkTrainConfig(raw: unknown, label: string, bad: (why: string) => DataError): TrainConfig {
  if (!isObject(raw)) throw bad(`${label} is not an object`);
  const adam = raw.adam;
  if (!isObject(adam)) throw bad(`${label}.adam is not an object`);
  const number = (name: LimitedOption, value: unknown, key: string) =>
    asDataError(() => checkNumber(name, value, `${label}.${key}`), bad);
  const fraction = (key: string): number => {
    const value = adam[key];
    if (!(typeof value === 'number' && value >= 0 && value < 1)) {
      throw bad(`${label}.adam.${key} is ${describe(value)}, expected a number from 0 to less than 1`);
    }
    return value;
  };
  const epsilon = adam.epsilon;
  if (!(typeof epsilon === 'number' && epsilon > 0 && epsilon < 1)) {
    throw bad(`${label}.adam.epsilon is ${describe(epsilon)}, expected a small positive number`);
  }
  if (typeof raw.model !== 'string') throw bad(`${label}.model is ${describe(raw.model)}, expected a layer list`);
  return {
    workers: number('workers', raw.workers, 'workers'),
    epochs: number('epochs', raw.epochs, 'epochs'),
    batchSize: number('batchSize', raw.batchSize, 'batchSize'),
    seed: number('seed', raw.seed, 'seed'),
    adam: {
      learningRate: number('learningRate', adam.learningRate, 'adam.learningRate'),
      beta1: fraction('beta1'),
      beta2: fraction('beta2'),
      epsilon,
    },
    schedule: asDataError(() => checkSchedule(raw.schedule, `${label}.schedule`), bad),
    model: raw.model,
    ...(raw.augment == null ? {} : { augment: asDataError(() => checkAugment(raw.augment, `${label}.augment`), bad) }),
  };
}

const EPOCH_FIELDS = ['epoch', 'loss', 'accuracy', 'testLoss', 'testAccuracy', 'seconds'] as const;

/** A run's history from a file: one log per epoch, numbered from 1, every field a finite number. */
export function checkHistory(raw: unknown, label: string, bad: (why: string) => DataError): EpochLog[] {
  if (!Array.isArray(raw)) throw bad(`${label} is not a list of epochs`);
  return raw.map((log: unknown, i) => {
    if (!isObject(log) || !EPOCH_FIELDS.every((field) => Number.isFinite(log[field])) || log.epoch !== i + 1) {
      throw bad(`${label}[${i}] is not {${EPOCH_FIELDS.join(', ')}} of epoch ${i + 1}`);
    }
    const [epoch, loss, accuracy, testLoss, testAccuracy, seconds] = EPOCH_FIELDS.map((field) => log[field] as number);
    return { epoch, loss, accuracy, testLoss, testAccuracy, seconds };
  });
}

/** `check()`, with an OptionError (a bad layer list, a number out of range) as a DataError about the file. */
function asDataError<T>(check: () => T, bad?: (why: string) => DataError): T {
  try {
    return check();
  } catch (error) {
    if (!(error instanceof OptionError)) throw error;
    throw bad === undefined ? new DataError(error.message) : bad(error.message);
  }
}

function isDimension(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 4096;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return quoteUntrusted(value);
  if (value === undefined) return 'missing';
  return quoteUntrusted(JSON.stringify(value) ?? String(value)).slice(1, -1);
}
