import * as tf from '@tensorflow/tfjs';
// Registered so that tf.ready() picks wasm over tfjs's slow plain-JS backend when the host program
// has not chosen a backend of its own.
import '@tensorflow/tfjs-backend-wasm';
import { OptionError, UnsupportedLayerError } from '../errors.js';
import { buildNetwork, kindOf, type Network } from './network.js';
import type { LayerSpec } from './spec.js';

/**
 * Trained parameters as a tfjs-layers model, as Keras would build it: the first layer takes
 * `[height, width]` grey images when it is a Flatten (the tutorial's model) and
 * `[height, width, channels]` ones otherwise; kernels in Keras's layouts. Compiled with the
 * training's loss, so that `model.evaluate` works as in the tutorial.
 */
export async function toLayersModel(params: Float32Array, network: Network): Promise<tf.LayersModel> {
  await tf.ready();
  const model = tf.sequential();
  const [height, width, channels] = network.input;
  network.layers.forEach((layer, i) => {
    const grey = layer.spec.kind === 'flatten' && channels === 1;
    const inputShape = i > 0 ? undefined : grey ? [height, width] : [height, width, channels];
    model.add(kindOf(layer.spec).kerasLayer(layer, inputShape));
  });
  setWeights(model, params, network);
  model.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}

/** Puts the flat parameters into a model whose layers are `network`'s, one for one. */
export function setWeights(model: tf.LayersModel, params: Float32Array, network: Network): void {
  const weights = network.layers.flatMap((layer) =>
    kindOf(layer.spec).toKerasWeights(layer, params.subarray(layer.offset, layer.offset + layer.paramCount)),
  );
  model.setWeights(weights);
  tf.dispose(weights);
}

/**
 * The model's input images as the model takes them: grey images `[count, height, width]` get a
 * channel axis when the model has one; colour images are `[count, height, width, channels]` already.
 */
export function modelInput(model: tf.LayersModel, images: tf.Tensor): tf.Tensor {
  const rank = model.inputs[0].shape.length;
  return rank === 4 && images.rank === 3 ? tf.expandDims(images, 3) : images;
}

const SUPPORTED =
  'Conv2D (square kernel, stride 1, valid or same padding, relu or linear), MaxPooling2D (square, stride = size, valid), ' +
  'Flatten, Dense (relu or linear; softmax for the last), Dropout';

/**
 * A tf.Sequential built with tfjs's layer API, as the trainer's layers and its current weights in
 * the trainer's layout (training starts from them, as `model.fit` would). Throws
 * UnsupportedLayerError naming the first layer that is not a supported kind or configuration, and
 * OptionError when the model does not fit the data.
 */
export function importSequential(
  model: tf.Sequential,
  image: { readonly height: number; readonly width: number; readonly channels?: number },
  classes: number,
): { layers: LayerSpec[]; network: Network; params: Float32Array } {
  const specs = model.layers.map((layer, index) => layerSpecOf(layer, index));
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
  const network = buildNetwork(specs, image, classes, 'model');
  const params = new Float32Array(network.paramCount);
  const weights = model.layers.map((layer) => layer.getWeights().map((w) => w.dataSync() as Float32Array));
  network.layers.forEach((layer, i) => {
    kindOf(layer.spec).fromKerasWeights(
      layer,
      weights[i],
      params.subarray(layer.offset, layer.offset + layer.paramCount),
    );
  });
  return { layers: specs, network, params };
}

type Config = Record<string, unknown>;

function layerSpecOf(layer: tf.layers.Layer, index: number): LayerSpec {
  const className = layer.getClassName();
  const config = layer.getConfig() as Config;
  const unsupported = (why: string) =>
    new UnsupportedLayerError(
      `model: layer ${index + 1} (${className} "${layer.name}") ${why}; the trainer supports ${SUPPORTED}`,
      className,
    );
  const square = (key: string): number => {
    const value = config[key];
    const pair = Array.isArray(value) ? value : [value, value];
    if (pair[0] !== pair[1] || typeof pair[0] !== 'number')
      throw unsupported(`has ${key} ${JSON.stringify(value)}, not square`);
    return pair[0];
  };
  const none = (...keys: string[]) => {
    for (const key of keys) {
      if (config[key] !== null && config[key] !== undefined)
        throw unsupported(`has a ${key}, which the trainer does not apply`);
    }
  };
  const activation = <T extends string>(allowed: readonly T[]): T => {
    const value = config.activation as string;
    if (!allowed.includes(value as T)) throw unsupported(`has activation "${value}"; supported: ${allowed.join(', ')}`);
    return value as T;
  };
  switch (className) {
    case 'Conv2D': {
      if (square('strides') !== 1) throw unsupported('has a stride other than 1');
      if (square('dilationRate') !== 1) throw unsupported('has a dilation rate other than 1');
      if (config.dataFormat !== 'channelsLast') throw unsupported('is not channelsLast (NHWC)');
      if (config.useBias !== true) throw unsupported('has no bias');
      none('kernelRegularizer', 'biasRegularizer', 'activityRegularizer', 'kernelConstraint', 'biasConstraint');
      const padding = config.padding;
      if (padding !== 'valid' && padding !== 'same') throw unsupported(`has padding "${String(padding)}"`);
      return {
        kind: 'conv',
        filters: config.filters as number,
        kernel: square('kernelSize'),
        padding,
        activation: activation(['relu', 'linear'] as const),
      };
    }
    case 'MaxPooling2D': {
      const size = square('poolSize');
      if (square('strides') !== size) throw unsupported('has strides other than its pool size');
      if (config.padding !== 'valid') throw unsupported(`has padding "${String(config.padding)}"`);
      return { kind: 'pool', size };
    }
    case 'Flatten':
      return { kind: 'flatten' };
    case 'Dense':
      if (config.useBias !== true) throw unsupported('has no bias');
      none('kernelRegularizer', 'biasRegularizer', 'activityRegularizer', 'kernelConstraint', 'biasConstraint');
      return {
        kind: 'dense',
        units: config.units as number,
        activation: activation(['relu', 'linear', 'softmax'] as const),
      };
    case 'Dropout':
      none('noiseShape');
      return { kind: 'dropout', rate: config.rate as number };
    default:
      throw unsupported('is not a kind the trainer supports');
  }
}
