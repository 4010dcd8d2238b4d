/**
 * Keras's rules for a layer's config, as tfjs-layers 4.22 implements them (`convOutputLength` for
 * convolutions and pooling): the types each layer kind's rule (its `keras.shapes`, in layers/) is
 * written in, and the checks they share. A config is read as model.json holds it, in snake_case;
 * shapes leave out the batch dimension; images are channels-last, `[height, width, channels]`.
 */

export type Settings = Record<string, unknown>;

/** Throws: `key` of the layer's config is `value`, where `expected` was wanted. */
export type Fail = (key: string, value: unknown, expected: string) => never;

/** A weight a layer creates: by its name within the layer (`kernel`, `bias`), in the order tfjs creates them. */
export interface KerasWeight {
  readonly name: string;
  readonly shape: readonly number[];
  /**
   * Set for a weight that is not trained but kept up to date by the layer itself (Keras's
   * non-trainable weights, such as a batch normalisation's moving statistics): in the trainer, it
   * lives in the state vector, beside the parameters, and Adam never touches it.
   */
  readonly state?: boolean;
}

/** What tfjs-layers makes of a layer's config. */
export interface LayerShapes {
  /** The config tfjs is handed, rebuilt from the checked settings alone. */
  readonly settings: Settings;
  readonly weights: readonly KerasWeight[];
  readonly output: number[];
}

/** Settings that act only in training; a model that has them is not one the trainer writes or trains. */
export const TRAINING_ONLY = [
  'kernel_regularizer',
  'bias_regularizer',
  'activity_regularizer',
  'kernel_constraint',
  'bias_constraint',
];

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

/** Elements of a tensor of this shape; past 2^53 only roughly, which is enough to refuse it. */
export function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function whole(value: unknown, key: string, fail: Fail): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) fail(key, value, 'a whole number from 1');
  return value as number;
}

/** A size given once for both dimensions, or as [height, width]. */
export function pair(value: unknown, key: string, fail: Fail): [number, number] {
  const both = Array.isArray(value) ? value : [value, value];
  if (both.length !== 2) fail(key, value, 'a whole number from 1, or two');
  return [whole(both[0], key, fail), whole(both[1], key, fail)];
}

export function image(input: readonly number[], fail: Fail): readonly number[] {
  if (input.length !== 3) fail('its input', input, 'images, [height, width, channels]');
  return input;
}

export function checkActivation(c: Settings, fail: Fail): string {
  const activation = c.activation ?? 'linear';
  if (typeof activation !== 'string' || !ACTIVATIONS.has(activation)) {
    fail('activation', activation, 'an activation tfjs knows');
  }
  return activation as string;
}

export function checkBoolean(value: unknown, key: string, fail: Fail): boolean {
  if (typeof value !== 'boolean') fail(key, value, 'true or false');
  return value as boolean;
}

export function checkPadding(c: Settings, fail: Fail): 'valid' | 'same' {
  // Channels-first would change every shape here, and the trainer never writes it.
  if ((c.data_format ?? 'channels_last') !== 'channels_last') fail('data_format', c.data_format, 'channels_last');
  const padding = c.padding ?? 'valid';
  if (padding !== 'valid' && padding !== 'same') fail('padding', padding, 'valid or same');
  return padding as 'valid' | 'same';
}

/** tfjs's `convOutputLength`; an output with no rows or columns is refused, as tfjs would fail on it. */
export function outputLength(
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

/** Whether a pair of sizes is `[n, n]`. */
export function isSquare(value: unknown): boolean {
  return Array.isArray(value) && value.length === 2 && value[0] === value[1];
}
