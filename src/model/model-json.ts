import { DataError, quoteUntrusted } from '../errors.js';
import { elements, type Settings, TRAINING_ONLY } from './keras-shapes.js';
import { KERAS_CLASSES, kindOfClass } from './kinds.js';
import { checkModelMetadata, type ModelMetadata } from './metadata.js';

/**
 * What loadModel accepts, checked before anything is read or allocated. Bounds, not format
 * limits: each is far above what npm run train writes.
 */
export const MODEL_LIMITS = {
  /** model.json: a Dense layer takes about 1 kB of it. */
  jsonBytes: 1 << 20,
  /** Entries of weightsManifest, and weight files: two entries per Dense layer, one file. */
  weights: 1024,
  /** The weight files together: 268 million float32 parameters, 2,600 times the default model. */
  weightBytes: 1 << 30,
};

/** The end of a message about a model directory that is not what saveModel wrote. */
export const DAMAGED = 'the model directory is damaged: train it again or copy it whole';
const SUPPORTED = `loadModel reads Sequential models of ${KERAS_CLASSES.slice(0, -1).join(', ')} and ${KERAS_CLASSES.at(-1)} layers, as npm run train writes them`;

/** model.json, checked: all tfjs will build from, and the bytes the weight files must hold. */
export interface ModelJson {
  /** Rebuilt from the checked settings alone: tfjs never sees a setting that was not checked. */
  readonly topology: object;
  /** In the order of their bytes in the weight files, each float32. */
  readonly weights: readonly { name: string; shape: number[] }[];
  /** The weight files, relative to the model directory, in the order their bytes are joined. */
  readonly paths: readonly string[];
  readonly bytes: number;
  /** Its classes and images, checked, when it records them. */
  readonly metadata: ModelMetadata | undefined;
}

/** JSON.parse for a file of the model directory: a DataError that names the file, on one line. */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    // V8's message quotes the text around the fault, which may hold any character.
    const message = (error as Error).message.replace(/[\s\x00-\x1f\x7f-\x9f]+/g, ' ').slice(0, 200);
    throw new DataError(`${file}: not valid JSON (${message}); ${DAMAGED}`);
  }
}

/**
 * Parses model.json (`file` names it in messages) and checks it against itself: the weights it lists
 * must be exactly those its layers would create, shape for shape, within MODEL_LIMITS. A layer with
 * a billion units is refused here, where tfjs would allocate it before noticing anything wrong.
 */
export function checkModelJson(text: string, file: string): ModelJson {
  const damaged = (what: string) => new DataError(`${file}: ${what}; ${DAMAGED}`);
  const json = parseJson(text, file);
  if (!isObject(json)) throw damaged(`the file holds ${describe(json)}, expected a JSON object`);
  const { weights, paths, bytes } = checkManifest(json.weightsManifest, file, damaged);
  const { topology, needed } = checkTopology(json.modelTopology, file, damaged);
  const listed = new Map<string, number[]>();
  for (const { name, shape } of weights) {
    if (listed.has(name)) throw damaged(`weightsManifest lists ${describe(name)} twice`);
    listed.set(name, shape);
  }
  for (const [name, shape] of needed) {
    const found = listed.get(name);
    if (found === undefined) {
      throw damaged(`the model needs the weight ${describe(name)}, which weightsManifest does not list`);
    }
    if (!sameShape(found, shape)) {
      throw damaged(
        `weightsManifest gives ${describe(name)} the shape ${formatShape(found)}, but its layer needs ${formatShape(shape)}`,
      );
    }
  }
  for (const name of listed.keys()) {
    if (!needed.has(name)) {
      throw damaged(`weightsManifest lists ${describe(name)}, which is no weight of the model's layers`);
    }
  }
  const metadata = checkModelMetadata(json.userDefinedMetadata, file, DAMAGED);
  return { topology, weights, paths, bytes, metadata };
}

function checkManifest(manifest: unknown, file: string, damaged: (what: string) => DataError) {
  if (!Array.isArray(manifest)) throw damaged(`weightsManifest is ${describe(manifest)}, expected a list`);
  const weights: { name: string; shape: number[] }[] = [];
  const paths: string[] = [];
  let bytes = 0;
  for (const group of manifest) {
    if (!isObject(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw damaged(`a weightsManifest entry is ${describe(group)}, expected {paths, weights}`);
    }
    if (
      paths.length + group.paths.length > MODEL_LIMITS.weights ||
      weights.length + group.weights.length > MODEL_LIMITS.weights
    ) {
      throw new DataError(`${file}: lists more than ${MODEL_LIMITS.weights} weights or weight files; ${SUPPORTED}`);
    }
    for (const path of group.paths) {
      if (typeof path !== 'string') throw damaged(`a weightsManifest path is ${describe(path)}, expected a file name`);
      paths.push(path);
    }
    for (const spec of group.weights) {
      if (!isObject(spec)) {
        throw damaged(`a weightsManifest weight is ${describe(spec)}, expected {name, shape, dtype}`);
      }
      if (typeof spec.name !== 'string') {
        throw damaged(`a weightsManifest weight's name is ${describe(spec.name)}, expected a string`);
      }
      const name = spec.name;
      if (!isShape(spec.shape)) {
        throw damaged(`weight ${describe(name)}: shape is ${describe(spec.shape)}, expected a list of sizes`);
      }
      if (spec.dtype !== 'float32') {
        throw new DataError(
          `${file}: weight ${describe(name)}: dtype is ${describe(spec.dtype)}, expected float32; ${SUPPORTED}`,
        );
      }
      if (spec.quantization != null) {
        throw new DataError(`${file}: weight ${describe(name)} is quantized; ${SUPPORTED}`);
      }
      bytes += 4 * elements(spec.shape);
      weights.push({ name, shape: spec.shape });
    }
  }
  if (bytes > MODEL_LIMITS.weightBytes) {
    throw new DataError(
      `${file}: its weights need ${bytes} bytes, more than the ${MODEL_LIMITS.weightBytes} loadModel accepts`,
    );
  }
  return { weights, paths, bytes };
}

/** tfjs's rule for the name of a tensor (`isValidTensorName`); a layer's name starts its weights' names. */
const TENSOR_NAME = /^[A-Za-z0-9][-A-Za-z0-9._/]*$/;

/**
 * A Sequential topology, rebuilt from its checked settings, and the weights its layers create, by
 * name, with their shapes worked out as tfjs would: by each layer kind's Keras rule, the one the
 * trainer places its own layers with (see layer.ts).
 */
function checkTopology(raw: unknown, file: string, damaged: (what: string) => DataError) {
  const unsupported = (what: string) => new DataError(`${file}: ${what}; ${SUPPORTED}`);
  if (!isObject(raw)) throw damaged(`modelTopology is ${describe(raw)}, expected an object`);
  if (raw.class_name !== 'Sequential') {
    throw unsupported(`modelTopology: class_name is ${describe(raw.class_name)}, expected Sequential`);
  }
  const config = raw.config;
  if (!isObject(config) || !Array.isArray(config.layers) || config.layers.length === 0) {
    throw damaged('modelTopology has no layers');
  }
  const needed = new Map<string, number[]>();
  const names = new Set<string>();
  const layers: object[] = [];
  let shape: number[] = [];
  for (const [i, layer] of config.layers.entries()) {
    if (!isObject(layer) || !isObject(layer.config)) {
      throw damaged(`layer ${i} is ${describe(layer)}, expected {class_name, config}`);
    }
    const c = layer.config;
    const name = c.name;
    if (typeof name !== 'string' || !TENSOR_NAME.test(name)) {
      throw damaged(`layer ${i}: name is ${describe(name)}, expected a tfjs name`);
    }
    if (names.has(name)) throw damaged(`two layers are named ${describe(name)}`);
    names.add(name);
    const kind = kindOfClass(layer.class_name);
    if (kind === undefined) {
      throw unsupported(
        `layer ${describe(name)}: class_name is ${describe(layer.class_name)}, expected one of ${KERAS_CLASSES.join(', ')}`,
      );
    }
    const settings: Settings = { name };
    if (i === 0) {
      const input = c.batch_input_shape;
      if (
        !Array.isArray(input) ||
        input.length < 2 ||
        input[0] !== null ||
        !isShape(input.slice(1)) ||
        input.includes(0)
      ) {
        throw damaged(`layer ${describe(name)}: batch_input_shape is ${describe(input)}, expected [null, sizes...]`);
      }
      shape = input.slice(1);
      settings.batch_input_shape = [null, ...shape];
    }
    if (c.trainable != null && typeof c.trainable !== 'boolean') {
      throw damaged(`layer ${describe(name)}: trainable is ${describe(c.trainable)}, expected true or false`);
    }
    settings.trainable = c.trainable ?? true;
    if (c.dtype != null && c.dtype !== 'float32') {
      throw unsupported(`layer ${describe(name)}: dtype is ${describe(c.dtype)}, expected float32`);
    }
    const trainingOnly = TRAINING_ONLY.find((key) => c[key] != null);
    if (trainingOnly !== undefined) {
      throw unsupported(`layer ${describe(name)}: ${trainingOnly} is ${describe(c[trainingOnly])}, expected null`);
    }
    const built = kind.keras.shapes(c, shape, (key, value, expected) => {
      throw unsupported(`layer ${describe(name)}: ${key} is ${describe(value)}, expected ${expected}`);
    });
    for (const weight of built.weights) needed.set(`${name}/${weight.name}`, [...weight.shape]);
    shape = built.output;
    layers.push({ class_name: layer.class_name, config: { ...settings, ...built.settings } });
  }
  return { topology: { class_name: 'Sequential', config: { layers } }, needed };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && d >= 0);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.slice(0, 8).join(', ')}${shape.length > 8 ? ', …' : ''}]`;
}

/** A value from model.json, short and on one line, for a message: never the whole of a nested value. */
function describe(value: unknown, depth = 0): string {
  if (typeof value === 'string') return quoteUntrusted(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (value === undefined) return 'missing';
  if (!Array.isArray(value)) return 'an object';
  if (depth > 0) return 'a list';
  return `[${value
    .slice(0, 8)
    .map((item) => describe(item, 1))
    .join(', ')}${value.length > 8 ? ', …' : ''}]`;
}
