/** Where each dense layer's weights and bias sit in the flat parameter vector. */
export interface LayerSlice {
  readonly inputs: number;
  readonly outputs: number;
  /** Offset of the [outputs, inputs] weight matrix (row-major, PyTorch's Linear layout). */
  readonly weightOffset: number;
  /** Offset of the [outputs] bias. */
  readonly biasOffset: number;
}

/**
 * Weights are stored as [outputs, inputs], transposed from Keras's [inputs, outputs] kernel: every
 * matMul of the step then has plain operands, which run ~10x faster on tfjs-wasm than transposed
 * ones, and the big weight matrix is never the operand XNNPACK must repack each step.
 */
export function paramLayout(sizes: readonly number[]): { layers: LayerSlice[]; count: number } {
  const layers: LayerSlice[] = [];
  let offset = 0;
  for (let i = 1; i < sizes.length; i++) {
    const inputs = sizes[i - 1];
    const outputs = sizes[i];
    layers.push({ inputs, outputs, weightOffset: offset, biasOffset: offset + inputs * outputs });
    offset += inputs * outputs + outputs;
  }
  return { layers, count: offset };
}
