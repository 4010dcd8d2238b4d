import * as tf from '@tensorflow/tfjs';
// Registered so that tf.ready() picks wasm over tfjs's slow plain-JS backend when the host program
// has not chosen a backend of its own.
import '@tensorflow/tfjs-backend-wasm';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { type FileInside, findFileInside, readFileInside, writeFileAtomically } from '../files.js';
import { checkModelJson, DAMAGED, MODEL_LIMITS, type ModelJson } from './model-json.js';

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

/**
 * Saves a model in the tfjs Layers format (`model.json` + `weights.bin`), the files tfjs-node's
 * `file://` writes. `model.json` is written last, atomically, so a directory never holds a
 * `model.json` whose weights are missing.
 */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? []);
      writeFileAtomically(join(dir, WEIGHTS_BIN), [new Uint8Array(weightData)]);
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        trainingConfig: artifacts.trainingConfig,
        userDefinedMetadata: artifacts.userDefinedMetadata,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      writeFileAtomically(join(dir, MODEL_JSON), JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

/** A model from its Layers-format artifacts in memory (as a trainer thread sends it). */
export async function modelFromArtifacts(artifacts: tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  await tf.ready();
  return tf.loadLayersModel(tf.io.fromMemory(artifacts));
}

/**
 * Loads a model saved by `saveModel` (or tfjs-node's `file://`) from a directory, uncompiled, as
 * saveModel saves no optimizer. The directory is untrusted input, as a downloaded model is: every
 * file it names must lie inside it, model.json must describe a Sequential model of the layer
 * classes the trainer writes (in any configuration tfjs runs, see layer.ts's KerasForm) and list
 * exactly their weights, and the weight files must hold exactly those bytes,
 * all finite. All of it is checked before tfjs allocates anything; what fails is a DataError with
 * a one-line message that names the file.
 */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const jsonPath = join(dir, MODEL_JSON);
  const json = checkModelJson(await readModelJson(dir, jsonPath), jsonPath);
  const data = await readWeights(dir, jsonPath, json);
  await tf.ready();
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: json.topology,
    weightSpecs: json.weights.map(({ name, shape }) => ({ name, shape, dtype: 'float32' })),
    weightData: data.buffer as ArrayBuffer,
    userDefinedMetadata: json.metadata as {} | undefined,
  };
  try {
    return await tf.loadLayersModel({ load: async () => artifacts });
  } catch (error) {
    // Not expected once model.json passed its checks; still the file's fault, not the caller's.
    const message = String(error instanceof Error ? error.message : error).split('\n')[0];
    throw new DataError(`${jsonPath}: tfjs cannot build the model (${message}); ${DAMAGED}`);
  }
}

async function readModelJson(dir: string, jsonPath: string): Promise<string> {
  const file = await findFileInside(dir, MODEL_JSON, jsonPath);
  if (file === undefined) {
    throw new DataError(`${jsonPath}: no such file; pass a directory written by saveModel or npm run train`);
  }
  if (file.size > MODEL_LIMITS.jsonBytes) {
    throw new DataError(
      `${jsonPath}: ${file.size} bytes, more than the ${MODEL_LIMITS.jsonBytes} a model.json may have; ${DAMAGED}`,
    );
  }
  const bytes = new Uint8Array(file.size);
  await readFileInside(file, bytes);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DataError(`${jsonPath}: not UTF-8 text; ${DAMAGED}`);
  }
}

/** The weight files' bytes, joined, once their sizes add up to what model.json lists and their values are finite. */
async function readWeights(dir: string, jsonPath: string, json: ModelJson): Promise<Uint8Array> {
  const files: FileInside[] = [];
  for (const path of json.paths) {
    const file = await findFileInside(dir, path, jsonPath);
    if (file === undefined) throw new DataError(`${join(dir, path)}: missing; ${DAMAGED}`);
    files.push(file);
  }
  const names = files.map((file) => file.path).join(', ');
  const size = files.reduce((sum, file) => sum + file.size, 0);
  if (size !== json.bytes) {
    const inAll = files.length > 1 ? ' in all' : '';
    throw new DataError(`${names}: ${size} bytes${inAll}, but model.json's weights need ${json.bytes}; ${DAMAGED}`);
  }
  const data = new Uint8Array(size);
  let offset = 0;
  for (const file of files) {
    await readFileInside(file, data, offset);
    offset += file.size;
  }
  // train() never builds a model from non-finite parameters; a flipped exponent bit makes one.
  const values = new Float32Array(data.buffer);
  offset = 0;
  for (const { name, shape } of json.weights) {
    const end = offset + shape.reduce((a, b) => a * b, 1);
    for (let i = offset; i < end; i++) {
      if (!Number.isFinite(values[i])) {
        throw new DataError(`${names}: ${name} holds NaN or infinite values; ${DAMAGED}`);
      }
    }
    offset = end;
  }
  return data;
}

/** A model's Layers-format artifacts in memory: topology, weight specs and weights, as `model.save` hands them over. */
export async function modelArtifacts(
  model: tf.LayersModel,
): Promise<tf.io.ModelArtifacts & { weightData: ArrayBuffer }> {
  let artifacts: (tf.io.ModelArtifacts & { weightData: ArrayBuffer }) | undefined;
  await model.save(
    tf.io.withSaveHandler(async (saved) => {
      artifacts = {
        modelTopology: saved.modelTopology,
        weightSpecs: saved.weightSpecs,
        weightData: tf.io.CompositeArrayBuffer.join(saved.weightData ?? []),
        userDefinedMetadata: saved.userDefinedMetadata,
      };
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(saved) };
    }),
  );
  return artifacts as tf.io.ModelArtifacts & { weightData: ArrayBuffer };
}
