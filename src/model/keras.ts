import * as tf from '@tensorflow/tfjs';
// Registered so that tf.ready() picks wasm over tfjs's slow plain-JS backend when the host program
// has not chosen a backend of its own.
import '@tensorflow/tfjs-backend-wasm';
import { OptionError, UnsupportedLayerError } from '../errors.js';
import { elements, type Settings, TRAINING_ONLY } from './keras-shapes.js';
import { ALL_KINDS, kindOf, kindOfClass, type LayerSpec } from './kinds.js';
import type { PlacedLayer } from './layer.js';
import { buildNetwork, type Network } from './network.js';

/**
/**
 * Trained parameters as a tfjs-layers model, as Keras would build it: each layer from its kind's
 * Keras settings (the config model.json holds), the first taking `[height, width]` grey images
 * when it makes vectors of them (the tutorial's Flatten) and `[height, width, channels]` ones
 * otherwise; kernels in Keras's layouts. Compiled with the training's loss, so that
 * `model.evaluate` works as in the tutorial.
 */
export async function toLayersModel(
  params: Float32Array,
  state: Float32Array,
  network: Network,
): Promise<tf.LayersModel> {
  await tf.ready();
  const [height, width, channels] = network.input;
  const grey = network.layers[0].output.length === 1 && channels === 1;
  const layers = network.layers.map((layer, i) => {
    const { className, settings } = kindOf(layer.spec).keras;
    const config: Settings = settings(layer.spec);
    if (i === 0) config.batch_input_shape = grey ? [null, height, width] : [null, height, width, channels];
    return { class_name: className, config };
  });
  const topology = { modelTopology: { class_name: 'Sequential', config: { layers } } };
  const model = await tf.models.modelFromJSON(topology as unknown as Parameters<typeof tf.models.modelFromJSON>[0]);
  setWeights(model, params, state, network);
  model.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}

/** Puts the flat parameters and the state into a model whose layers are `network`'s, one for one. */
export function setWeights(model: tf.LayersModel, params: Float32Array, state: Float32Array, network: Network): void {
  // Layer by layer: a model's own list puts every layer's trained weights before any layer's
  // others (a batch normalisation's moving statistics); a layer's keeps Keras's order.
  network.layers.forEach((layer, i) => {
    const weights = toKerasWeights(layer, params, state);
    model.layers[i].setWeights(weights);
    tf.dispose(weights);
  });
}

/**
 * A layer's Keras weights, in Keras's order, from its parameters in the flat vector and its state
 * in the state vector: they are stored as those, back to back in each.
 */
export function toKerasWeights(layer: PlacedLayer, params: Float32Array, state: Float32Array): tf.Tensor[] {
  const at = { params: layer.offset, state: layer.stateOffset };
  return layer.weights.map((weight) => {
    const size = elements(weight.shape);
    const from = weight.state === true ? 'state' : 'params';
    const values = (from === 'state' ? state : params).slice(at[from], at[from] + size);
    at[from] += size;
    return tf.tensor(values, [...weight.shape]);
  });
}

/** The inverse of toKerasWeights: a layer's Keras weights' values into its slices of the two vectors. */
export function fromKerasWeights(
  layer: PlacedLayer,
  values: readonly Float32Array[],
  params: Float32Array,
  state: Float32Array,
): void {
  const at = { params: layer.offset, state: layer.stateOffset };
  layer.weights.forEach((weight, i) => {
    const to = weight.state === true ? 'state' : 'params';
    (to === 'state' ? state : params).set(values[i], at[to]);
    at[to] += values[i].length;
  });
}

/**
 * The model's input images as the model takes them: grey images `[count, height, width]` get a
 * channel axis when the model has one; colour images are `[count, height, width, channels]` already.
 */
export function modelInput(model: tf.LayersModel, images: tf.Tensor): tf.Tensor {
  const rank = model.inputs[0].shape.length;
  return rank === 4 && images.rank === 3 ? tf.expandDims(images, 3) : images;
}

const SUPPORTED = ALL_KINDS.map((kind) => kind.keras.supported).join(', ');

/**
 * A tf.Sequential built with tfjs's layer API, as the trainer's layers and its current weights in
 * the trainer's layout, parameters and state (training starts from them, as `model.fit` would).
 * Each layer is read from its config as model.json would hold it, by its kind's Keras rule, as
 * loadModel reads one. Throws UnsupportedLayerError naming the first layer that is not a supported
 * kind or configuration, and OptionError when the model does not fit the data.
 */
export function importSequential(
  model: tf.Sequential,
  image: { readonly height: number; readonly width: number; readonly channels?: number },
  classes: number,
): { layers: LayerSpec[]; network: Network; params: Float32Array; state: Float32Array } {
  const shape = model.inputs[0].shape.slice(1);
  const channels = image.channels ?? 1;
  const expected = [image.height, image.width];
  const fits =
    shape.length >= 2 &&
    shape[0] === expected[0] &&
    shape[1] === expected[1] &&
    ((shape.length === 2 && channels === 1) || (shape.length === 3 && shape[2] === channels));
  if (!fits) {
    const what = channels === 1 ? 'one channel' : `${channels} channels`;
    const before = channels === 1 ? ` (or [${expected.join(', ')}] before a flatten)` : '';
    throw new OptionError(
      `model: its input is [${shape.join(', ')}] per image, but the data's images are ${expected.join('x')} with ${what}: ` +
        `build it with inputShape [${expected.join(', ')}, ${channels}]${before}`,
    );
  }
  const topology = model.toJSON(null, false) as { config: { layers: { class_name: string; config: Settings }[] } };
  let input = shape as number[];
  const specs = model.layers.map((layer, index) => {
    const { class_name: className, config } = topology.config.layers[index];
    const unsupported = (why: string) =>
      new UnsupportedLayerError(
        `model: layer ${index + 1} (${className} "${layer.name}") ${why}; the trainer supports ${SUPPORTED}`,
        className,
      );
    const kind = kindOfClass(className);
    if (kind === undefined) throw unsupported('is not a kind the trainer supports');
    const trainingOnly = TRAINING_ONLY.find((key) => config[key] != null);
    if (trainingOnly !== undefined) {
      throw unsupported(`has a ${camelCase(trainingOnly)}, which the trainer does not apply`);
    }
    const { settings, output } = kind.keras.shapes(config, input, (key, value, wanted) => {
      throw unsupported(`has ${camelCase(key)} ${JSON.stringify(value)}, expected ${wanted}`);
    });
    input = output;
    return kind.keras.spec(settings, unsupported);
  });
  const network = buildNetwork(specs, image, classes, 'model');
  const params = new Float32Array(network.paramCount);
  const state = new Float32Array(network.stateCount);
  network.layers.forEach((layer, i) => {
    const weights = model.layers[i].getWeights().map((w) => w.dataSync() as Float32Array);
    fromKerasWeights(layer, weights, params, state);
  });
  return { layers: specs, network, params, state };
}

/** A config key as tfjs's layer API spells it, for messages: `kernel_size` is `kernelSize` there. */
function camelCase(key: string): string {
  return key.replace(/_(\w)/g, (_, letter: string) => letter.toUpperCase());
}
