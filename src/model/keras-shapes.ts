/**
 * What tfjs-layers makes of each kind of layer loadModel accepts, worked out from its Keras config
 * in model.json without building it: the config tfjs is handed (rebuilt from the checked settings
 * alone), the shapes of the weights the layer creates, and its output's shape. Keras's rules, as
 * tfjs-layers 4.22 implements them (`convOutputLength` for convolutions and pooling). Shapes leave
 * out the batch dimension; images are channels-last, `[height, width, channels]`. One entry per
 * kind: the kinds npm run train can write.
 */

export type Settings = Record<string, unknown>;

/** Throws: `key` of the layer's config is `value`, where `expected` was wanted. */
export type Fail = (key: string, value: unknown, expected: string) => never;

export interface LayerShapes {
  readonly settings: Settings;
  /** By the weight's name within the layer (`kernel`, `bias`), in the order tfjs creates them. */
  readonly weights: [string, number[]][];
  readonly output: number[];
}

export type LayerRule = (config: Settings, input: number[], fail: Fail) => LayerShapes;

/** Names of the activations tfjs-layers 4.22 registers, as it writes them. */
const ACTIVATIONS = new Set([
  'elu',
  'selu',
  'relu',
  'relu6',
  'linear',
  'sigmoid',
  'hardSigmoid',
  'softplus',
  'softsign',
  'tanh',
  'softmax',
  'logSoftmax',
  'gelu',
  'mish',
  'swish',
]);

export const LAYER_RULES = new Map<string, LayerRule>([
  [
    'Conv2D',
    (c, input, fail) => {
      const [height, width, channels] = image(input, fail);
      const filters = whole(c.filters, 'filters', fail);
      const kernel = pair(c.kernel_size, 'kernel_size', fail);
      const strides = pair(c.strides ?? 1, 'strides', fail);
      const dilation = pair(c.dilation_rate ?? 1, 'dilation_rate', fail);
      if (Math.max(...strides) > 1 && Math.max(...dilation) > 1) {
        // tfjs builds such a layer, then its conv2d refuses to run it.
        fail('dilation_rate', c.dilation_rate, '1 when strides are above 1');
      }
      const padding = checkPadding(c, fail);
      const activation = checkActivation(c, fail);
      const useBias = checkBoolean(c.use_bias ?? true, 'use_bias', fail);
      const output = [
        outputLength(height, kernel[0], padding, strides[0], dilation[0], fail),
        outputLength(width, kernel[1], padding, strides[1], dilation[1], fail),
        filters,
      ];
      const weights: [string, number[]][] = [['kernel', [kernel[0], kernel[1], channels, filters]]];
      if (useBias) weights.push(['bias', [filters]]);
      const settings = {
        filters,
        kernel_size: kernel,
        strides,
        padding,
        data_format: 'channels_last',
        dilation_rate: dilation,
        activation,
        use_bias: useBias,
      };
      return { settings, weights, output };
    },
  ],
  [
    'MaxPooling2D',
    (c, input, fail) => {
      const [height, width, channels] = image(input, fail);
      const size = pair(c.pool_size ?? 2, 'pool_size', fail);
      const strides = pair(c.strides ?? size, 'strides', fail);
      const padding = checkPadding(c, fail);
      const output = [
        outputLength(height, size[0], padding, strides[0], 1, fail),
        outputLength(width, size[1], padding, strides[1], 1, fail),
        channels,
      ];
      const settings = { pool_size: size, strides, padding, data_format: 'channels_last' };
      return { settings, weights: [], output };
    },
  ],
  [
    'Dropout',
    (c, input, fail) => {
      const rate = c.rate;
      if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) fail('rate', rate, 'a number from 0 to below 1');
      if (c.noise_shape != null) fail('noise_shape', c.noise_shape, 'null');
      return { settings: { rate }, weights: [], output: input };
    },
  ],
  ['Flatten', (_, input) => ({ settings: {}, weights: [], output: [elements(input)] })],
  [
    'Dense',
    (c, input, fail) => {
      const units = whole(c.units, 'units', fail);
      const activation = checkActivation(c, fail);
      const useBias = checkBoolean(c.use_bias ?? true, 'use_bias', fail);
      const weights: [string, number[]][] = [['kernel', [input[input.length - 1], units]]];
      if (useBias) weights.push(['bias', [units]]);
      return { settings: { units, activation, use_bias: useBias }, weights, output: [...input.slice(0, -1), units] };
    },
  ],
]);

/** Elements of a tensor of this shape; past 2^53 only roughly, which is enough to refuse it. */
export function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function whole(value: unknown, key: string, fail: Fail): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) fail(key, value, 'a whole number from 1');
  return value as number;
}

/** A size given once for both dimensions, or as [height, width]. */
function pair(value: unknown, key: string, fail: Fail): [number, number] {
  const both = Array.isArray(value) ? value : [value, value];
  if (both.length !== 2) fail(key, value, 'a whole number from 1, or two');
  return [whole(both[0], key, fail), whole(both[1], key, fail)];
}

function image(input: number[], fail: Fail): number[] {
  if (input.length !== 3) fail('its input', input, 'images, [height, width, channels]');
  return input;
}

function checkActivation(c: Settings, fail: Fail): string {
  const activation = c.activation ?? 'linear';
  if (typeof activation !== 'string' || !ACTIVATIONS.has(activation)) {
    fail('activation', activation, 'an activation tfjs knows');
  }
  return activation as string;
}

function checkBoolean(value: unknown, key: string, fail: Fail): boolean {
  if (typeof value !== 'boolean') fail(key, value, 'true or false');
  return value as boolean;
}

function checkPadding(c: Settings, fail: Fail): 'valid' | 'same' {
  // Channels-first would change every shape here, and npm run train never writes it.
  if ((c.data_format ?? 'channels_last') !== 'channels_last') fail('data_format', c.data_format, 'channels_last');
  const padding = c.padding ?? 'valid';
  if (padding !== 'valid' && padding !== 'same') fail('padding', padding, 'valid or same');
  return padding as 'valid' | 'same';
}

/** tfjs's `convOutputLength`; an output with no rows or columns is refused, as tfjs would fail on it. */
function outputLength(
  length: number,
  size: number,
  padding: 'valid' | 'same',
  stride: number,
  dilation: number,
  fail: Fail,
): number {
  const dilated = size + (size - 1) * (dilation - 1);
  const out = Math.floor(((padding === 'same' ? length : length - dilated + 1) + stride - 1) / stride);
  if (out < 1) fail('its input', length, `at least ${dilated} rows and columns for its window`);
  return out;
}
