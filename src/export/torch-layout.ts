import type { PlacedLayer, TorchTensor } from '../model/layer.js';
import { kindOf, type Network } from '../model/network.js';
import { formatLayer } from '../model/spec.js';

/**
 * The network's flat vectors (its parameters, and Adam's moments, laid out alike) as the named
 * tensors of the export's PyTorch module, and back. Each layer kind says how (its `torch` member);
 * this only names the tensors as `nn.ModuleList` does: `layers.<position>.<name>`.
 */

/** A parameter tensor of the network in PyTorch: its state_dict name and shape, and its layer. */
export interface NetworkTensor extends TorchTensor {
  readonly layer: PlacedLayer;
  /** What it is, for messages: `layer 2 (dense:128)`. */
  readonly label: string;
}

export function networkTensors(network: Network): NetworkTensor[] {
  return network.layers.flatMap((layer) =>
    kindOf(layer.spec)
      .torch.tensors(layer)
      .map((tensor) => ({
        ...tensor,
        name: `layers.${layer.index}.${tensor.name}`,
        layer,
        label: `layer ${layer.index + 1} (${formatLayer(layer.spec, layer.index === network.layers.length - 1)})`,
      })),
  );
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
