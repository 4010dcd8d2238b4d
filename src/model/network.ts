import { OptionError } from '../errors.js';
import type { Rng } from '../rng.js';
import type { LayerKind, PlacedLayer } from './layer.js';
import { conv } from './layers/conv.js';
import { dense } from './layers/dense.js';
import { dropout } from './layers/dropout.js';
import { flatten } from './layers/flatten.js';
import { pool } from './layers/pool.js';
import { type ConvSpec, formatLayer, type LayerSpec, type Shape } from './spec.js';
import { winogradMacs, winogradPlan } from './winograd.js';

/** Every kind of layer, by the name its spec carries. */
const KINDS: { readonly [K in LayerSpec['kind']]: LayerKind<Extract<LayerSpec, { kind: K }>> } = {
  conv,
  pool,
  flatten,
  dense,
  dropout,
};

export function kindOf<S extends LayerSpec>(spec: S): LayerKind<S> {
  return KINDS[spec.kind] as unknown as LayerKind<S>;
}

/** A model's layers placed on its input: shapes, and the layout of the flat parameter vector. */
export interface Network {
  readonly layers: readonly PlacedLayer[];
  /** One sample's input, `[height, width, channels]`. */
  readonly input: Shape;
  readonly classes: number;
  readonly paramCount: number;
}

/**
 * The most parameters a run may have: the optimizer keeps 3 + (workers) float32 copies of them in
 * one WebAssembly memory, which cannot pass 4 GiB.
 */
export const MAX_PARAMS = 32 * 1024 * 1024;

/**
 * Places `specs` on images of `height x width x channels` (one channel when it is not given), for
 * `classes` classes. Throws an
 * OptionError naming the layer and `label` (the option the layers came from) when a shape does not
 * work, or the model does not end with the softmax output layer.
 */
export function buildNetwork(
  specs: readonly LayerSpec[],
  image: { readonly height: number; readonly width: number; readonly channels?: number },
  classes: number,
  label: string,
): Network {
  const input: Shape = [image.height, image.width, image.channels ?? 1];
  const layers: PlacedLayer[] = [];
  let shape = input;
  let offset = 0;
  specs.forEach((spec, index) => {
    const at = `${label}: ${formatLayer(spec, index === specs.length - 1)} at position ${index + 1}`;
    if (spec.kind === 'dense' && spec.activation === 'softmax' && index !== specs.length - 1) {
      throw new OptionError(`${at}: softmax is for the output layer only; use relu or linear here`);
    }
    const kind = kindOf(spec);
    let output: Shape;
    try {
      output = kind.outputShape(spec, shape);
    } catch (error) {
      throw new OptionError(`${at} ${(error as Error).message}`);
    }
    const paramCount = kind.paramCount(spec, shape);
    layers.push({ spec, index, input: shape, output, offset, paramCount, needsInputGradient: offset > 0 });
    offset += paramCount;
    if (offset > MAX_PARAMS) {
      throw new OptionError(
        `${at} brings the model to ${offset} parameters, more than the ${MAX_PARAMS} allowed; use fewer or smaller layers`,
      );
    }
    shape = output;
  });
  const last = specs.at(-1);
  if (last?.kind !== 'dense' || last.activation !== 'softmax' || last.units !== classes) {
    const got = last === undefined ? 'nothing' : formatLayer(last, true);
    throw new OptionError(
      `${label}: the last layer must be dense:${classes} with softmax (one unit per class), got ${got}`,
    );
  }
  return { layers, input, classes, paramCount: offset };
}

/** Keras's initial parameters: Glorot-uniform kernels and zero biases, drawn layer by layer. */
export function initializeParams(network: Network, params: Float32Array, rng: Rng): void {
  for (const layer of network.layers) {
    kindOf(layer.spec).initialize(layer, params.subarray(layer.offset, layer.offset + layer.paramCount), rng);
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
    const macs = forwardMacs(layer);
    flops += 2 * macs * (layer.needsInputGradient ? 3 : 2);
  }
  return flops;
}

/**
 * The floating-point operations one sample's training step multiplies as computed: trainingFlops,
 * but where a convolution's pass takes Winograd's algorithm, its element-wise products instead of
 * the direct convolution's (its transforms are left out, as pooling is). What the hardware does,
 * where trainingFlops is what the step is worth.
 */
export function performedFlops(network: Network): number {
  let flops = 0;
  for (const layer of network.layers) {
    const direct = forwardMacs(layer);
    const plan = layer.spec.kind === 'conv' ? winogradPlan(layer.spec, layer.input) : undefined;
    const winograd =
      plan === undefined ? undefined : winogradMacs(layer.spec as ConvSpec, layer.input, layer.output, plan.tile);
    const pass = (uses: boolean | undefined, macs: number | undefined) =>
      2 * (uses && macs !== undefined ? macs : direct);
    flops += pass(plan?.forward, winograd?.forward) + pass(plan?.filterGradient, winograd?.filterGradient);
    if (layer.needsInputGradient) flops += pass(plan?.inputGradient, winograd?.inputGradient);
  }
  return flops;
}

/** Multiply-adds of one sample's forward pass through a layer (0 for those without weights). */
export function forwardMacs({ spec, input, output }: PlacedLayer): number {
  if (spec.kind === 'dense') return input[0] * spec.units;
  if (spec.kind === 'conv') return output[0] * output[1] * spec.filters * spec.kernel * spec.kernel * input[2];
  return 0;
}
