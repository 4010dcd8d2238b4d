import type { LayerKind } from './layer.js';
import { type BatchNormSpec, batchNorm } from './layers/batch-norm.js';
import { conv, type ConvSpec } from './layers/conv.js';
import { dense, type DenseSpec } from './layers/dense.js';
import { dropout, type DropoutSpec } from './layers/dropout.js';
import { flatten, type FlattenSpec } from './layers/flatten.js';
import { pool, type PoolSpec } from './layers/pool.js';
import { relu, type ReluSpec } from './layers/relu.js';

/**
 * The layers a model is made of, in the order data flows through them. Keras semantics: images are
 * NHWC (height, width, channels), kernels are initialised Glorot-uniform and biases to zero.
 */
export type LayerSpec = ConvSpec | PoolSpec | FlattenSpec | DenseSpec | DropoutSpec | BatchNormSpec | ReluSpec;

/**
 * Every kind of layer, by the name its spec carries, which is also its word in a layer list: a
 * spec without a kind here, or a kind without a spec, does not compile. Their order is the order
 * in which the grammar and the messages list them.
 */
const KINDS: { readonly [K in LayerSpec['kind']]: LayerKind<Extract<LayerSpec, { kind: K }>> } = {
  conv,
  pool,
  flatten,
  dense,
  dropout,
  bn: batchNorm,
  relu,
};

/** The kinds' words, and the kinds, in the grammar's order. */
export const LAYER_KINDS = Object.keys(KINDS) as LayerSpec['kind'][];
export const ALL_KINDS = Object.values(KINDS) as readonly LayerKind<LayerSpec>[];

export function kindOf<S extends LayerSpec>(spec: S): LayerKind<S> {
  return KINDS[spec.kind] as unknown as LayerKind<S>;
}

/** The kind whose word is `word`, if there is one. */
export function kindNamed(word: string): LayerKind<LayerSpec> | undefined {
  return Object.hasOwn(KINDS, word) ? (KINDS[word as LayerSpec['kind']] as LayerKind<LayerSpec>) : undefined;
}

const BY_CLASS = new Map(ALL_KINDS.map((kind) => [kind.keras.className, kind]));

/** The Keras class names of the kinds, in the grammar's order: `Conv2D`, `MaxPooling2D`, ... */
export const KERAS_CLASSES = [...BY_CLASS.keys()];

/** The kind whose Keras class is `className`, if there is one. */
export function kindOfClass(className: unknown): LayerKind<LayerSpec> | undefined {
  return typeof className === 'string' ? BY_CLASS.get(className) : undefined;
}
