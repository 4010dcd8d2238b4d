import { OptionError } from '../errors.js';
import type { Rng } from '../rng.js';
import type { Shape } from './compute.js';
import { elements } from './keras-shapes.js';
import { kindOf, type LayerSpec } from './kinds.js';
import type { PlacedLayer } from './layer.js';
import { formatLayer } from './spec.js';

/** A model's layers placed on its input: shapes, and the layout of the flat parameter vector. */
export interface Network {
  readonly layers: readonly PlacedLayer<LayerSpec>[];
  /** One sample's input, `[height, width, channels]`. */
  readonly input: Shape;
  readonly classes: number;
  readonly paramCount: number;
  /** The length of the state vector (see PlacedLayer.stateCount). */
  readonly stateCount: number;
  /** The most values a layer sums over the step's shards at once (see Collective); 0 when none does. */
  readonly collectiveLength: number;
}

/**
 * The most parameters a run may have: the optimizer keeps 3 + (workers) float32 copies of them in
 * one WebAssembly memory, which cannot pass 4 GiB.
 */
export const MAX_PARAMS = 32 * 1024 * 1024;

/**
 * Places `specs` on images of `height x width x channels` (one channel when it is not given), for
 * `classes` classes. Throws an OptionError naming the layer and `label` (the option the layers
 * came from) when a shape does not work, or the model does not end with the softmax output layer.
 */
export function buildNetwork(
  specs: readonly LayerSpec[],
  image: { readonly height: number; readonly width: number; readonly channels?: number },
  classes: number,
  label: string,
): Network {
  const input: Shape = [image.height, image.width, image.channels ?? 1];
  const layers: PlacedLayer<LayerSpec>[] = [];
  let shape = input;
  let offset = 0;
  let stateOffset = 0;
  specs.forEach((spec, index) => {
    const last = index === specs.length - 1;
    const at = `${label}: ${formatLayer(spec, last)} at position ${index + 1}`;
    const kind = kindOf(spec);
    const settings = kind.keras.settings(spec);
    if (settings.activation === 'softmax' && !last) {
      throw new OptionError(`${at}: softmax is for the output layer only; use relu or linear here`);
    }
    try {
      kind.check(spec, shape);
    } catch (error) {
      throw new OptionError(`${at} ${(error as Error).message}`);
    }
    // What the kind's check let through, its Keras rule takes.
    const { weights, output } = kind.keras.shapes(settings, shape, (key, value, expected) => {
      throw new OptionError(`${at}: ${key} is ${JSON.stringify(value)}, expected ${expected}`);
    });
    const size = (state: boolean) =>
      weights
        .filter((weight) => (weight.state === true) === state)
        .reduce((sum, weight) => sum + elements(weight.shape), 0);
    const paramCount = size(false);
    const stateCount = size(true);
    const needsInputGradient = offset > 0;
    layers.push({
      spec,
      index,
      input: shape,
      output,
      weights,
      offset,
      paramCount,
      stateOffset,
      stateCount,
      needsInputGradient,
    });
    offset += paramCount;
    stateOffset += stateCount;
    if (offset > MAX_PARAMS) {
      throw new OptionError(
        `${at} brings the model to ${offset} parameters, more than the ${MAX_PARAMS} allowed; use fewer or smaller layers`,
      );
    }
    shape = output;
  });
  const last = layers.at(-1);
  if (
    last === undefined ||
    kindOf(last.spec).keras.settings(last.spec).activation !== 'softmax' ||
    last.output.length !== 1 ||
    last.output[0] !== classes
  ) {
    const got = last === undefined ? 'nothing' : formatLayer(last.spec, true);
    throw new OptionError(
      `${label}: the last layer must be dense:${classes} with softmax (one unit per class), got ${got}`,
    );
  }
  const collectiveLength = Math.max(0, ...layers.map((layer) => kindOf(layer.spec).collectiveLength(layer)));
  return { layers, input, classes, paramCount: offset, stateCount: stateOffset, collectiveLength };
}

/** Keras's initial parameters (Glorot-uniform kernels and zero biases) and state, drawn layer by layer. */
export function initializeParams(network: Network, params: Float32Array, state: Float32Array, rng: Rng): void {
  for (const layer of network.layers) {
    kindOf(layer.spec).initialize(
      layer,
      params.subarray(layer.offset, layer.offset + layer.paramCount),
      state.subarray(layer.stateOffset, layer.stateOffset + layer.stateCount),
      rng,
    );
  }
}

/**
 * Floating-point operations of one sample's training step, counting a multiply-add as 2: the
 * forward pass of every conv and dense layer, their weight gradients (as many), and their input
 * gradients (as many again) for all but the first layer with parameters, which needs none. Pooling,
 * activations and the optimizer are left out: they are memory traffic, not arithmetic.
 */
export function trainingFlops(network: Network): number {
  let flops = 0;
  for (const layer of network.layers) {
    const macs = kindOf(layer.spec).macs(layer);
    flops += 2 * macs * (layer.needsInputGradient ? 3 : 2);
  }
  return flops;
}

/**
 * The floating-point operations one sample's training step multiplies as computed: trainingFlops,
 * but where a layer's pass takes an algorithm with fewer multiplications (Winograd's, for a
 * convolution), its count (see LayerKind.performedMacs; its transforms are left out, as pooling
 * is). What the hardware does, where trainingFlops is what the step is worth.
 */
export function performedFlops(network: Network): number {
  let flops = 0;
  for (const layer of network.layers) {
    const kind = kindOf(layer.spec);
    const macs = kind.macs(layer);
    const passes = kind.performedMacs?.(layer) ?? { forward: macs, filterGradient: macs, inputGradient: macs };
    flops += 2 * (passes.forward + passes.filterGradient + (layer.needsInputGradient ? passes.inputGradient : 0));
  }
  return flops;
}
