import type { KerasWeight } from '../model/keras-shapes.js';
import { kindOf, type LayerSpec } from '../model/kinds.js';
import type { PlacedLayer, TorchTensor } from '../model/layer.js';
import type { Network } from '../model/network.js';
import { formatLayer } from '../model/spec.js';

/**
 * The network's flat vectors (its parameters, and Adam's moments, laid out alike; its state) as
 * the named tensors of the export's PyTorch module, and back. Each layer kind says how (its
 * `torch` member); this only names the tensors as `nn.ModuleList` does: `layers.<position>.<name>`.
 */

/** A tensor of the network in PyTorch: its state_dict name and shape, and its layer. */
export interface NetworkTensor extends TorchTensor {
  readonly layer: PlacedLayer<LayerSpec>;
  /** What it is, for messages: `layer 2 (dense:128)`. */
  readonly label: string;
}

/** The network's parameter tensors, in the order of its state_dict. */
export function networkTensors(network: Network): NetworkTensor[] {
  return network.layers.flatMap((layer) =>
    kindOf(layer.spec)
      .torch.tensors(layer)
      .map((tensor) => named(network, layer, tensor)),
  );
}

/** The network's state as buffers of its modules (see TorchForm.buffers), layer by layer as the state vector holds it. */
export function networkBuffers(network: Network): NetworkTensor[] {
  return network.layers.flatMap((layer) => {
    const names = kindOf(layer.spec).torch.buffers(layer);
    const weights = stateWeights(layer);
    if (names.length !== weights.length) {
      throw new Error(`${layer.spec.kind} has ${weights.length} state weights and ${names.length} PyTorch buffers`);
    }
    return weights.map((weight, i) => named(network, layer, { name: names[i], shape: weight.shape }));
  });
}

function named(network: Network, layer: PlacedLayer<LayerSpec>, tensor: TorchTensor): NetworkTensor {
  return {
    ...tensor,
    name: `layers.${layer.index}.${tensor.name}`,
    layer,
    label: `layer ${layer.index + 1} (${formatLayer(layer.spec, layer.index === network.layers.length - 1)})`,
  };
}

function stateWeights(layer: PlacedLayer): KerasWeight[] {
  return layer.weights.filter((weight) => weight.state === true);
}

/** `values`, laid out as the network's parameters, as the values of its PyTorch tensors, by name. */
export function toTorch(network: Network, values: Float32Array): Map<string, Float32Array> {
  const tensors = new Map<string, Float32Array>();
  for (const layer of network.layers) {
    const torch = kindOf(layer.spec).torch;
    const parts = torch.toTorch(layer, values.subarray(layer.offset, layer.offset + layer.paramCount));
    torch.tensors(layer).forEach((tensor, i) => tensors.set(`layers.${layer.index}.${tensor.name}`, parts[i]));
  }
  return tensors;
}

/** The inverse of toTorch: the tensors' values, each found by `get` from its name, in one flat vector. */
export function fromTorch(network: Network, get: (name: string) => Float32Array): Float32Array {
  const values = new Float32Array(network.paramCount);
  for (const layer of network.layers) {
    const torch = kindOf(layer.spec).torch;
    const tensors = torch.tensors(layer).map((tensor) => get(`layers.${layer.index}.${tensor.name}`));
    torch.fromTorch(layer, tensors, values.subarray(layer.offset, layer.offset + layer.paramCount));
  }
  return values;
}

/** The state vector as the values of the network's buffers, by name: each a state weight's values as they are. */
export function stateToTorch(network: Network, state: Float32Array): Map<string, Float32Array> {
  const buffers = new Map<string, Float32Array>();
  let at = 0;
  for (const buffer of networkBuffers(network)) {
    const size = buffer.shape.reduce((a, b) => a * b, 1);
    buffers.set(buffer.name, state.slice(at, at + size));
    at += size;
  }
  return buffers;
}

/** The inverse of stateToTorch: the buffers' values, each found by `get` from its name, as the state vector. */
export function stateFromTorch(network: Network, get: (name: string) => Float32Array): Float32Array {
  const state = new Float32Array(network.stateCount);
  let at = 0;
  for (const buffer of networkBuffers(network)) {
    const values = get(buffer.name);
    state.set(values, at);
    at += values.length;
  }
  return state;
}
