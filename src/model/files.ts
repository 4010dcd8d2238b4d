import * as tf from '@tensorflow/tfjs';
// Registered so that tf.ready() picks wasm over tfjs's slow plain-JS backend when the host program
// has not chosen a backend of its own.
import '@tensorflow/tfjs-backend-wasm';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../files.js';

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

/** Loads a model saved by `saveModel` (or tfjs-node's `file://`) from a directory, with tf.loadLayersModel. */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  await tf.ready();
  return tf.loadLayersModel({
    load: async () => {
      const json = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8')) as tf.io.ModelJSON;
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((group) => group.weights);
        const buffers = await Promise.all(
          manifest.flatMap((group) => group.paths).map((path) => readFile(join(dir, path))),
        );
        const data = tf.io.concatenateArrayBuffers(
          buffers.map((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)),
        );
        return [specs, data];
      });
    },
  });
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
      };
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(saved) };
    }),
  );
  return artifacts as tf.io.ModelArtifacts & { weightData: ArrayBuffer };
}
