import type * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import type { Activations, StepContext } from './compute.js';
import type { LayerSpec, Shape } from './spec.js';

/** A layer of a network, placed: its spec, the shapes around it and its slice of the flat parameter vector. */
export interface PlacedLayer<S extends LayerSpec = LayerSpec> {
  readonly spec: S;
  /** 0-based position in the network. */
  readonly index: number;
  readonly input: Shape;
  readonly output: Shape;
  /** Where its parameters start in the flat parameter vector, and how many there are. */
  readonly offset: number;
  readonly paramCount: number;
  /** Whether a layer before it has parameters, so that its backward pass must give its input's gradient. */
  readonly needsInputGradient: boolean;
}

/**
 * What a kind of layer is: its shape rule, its parameters and their initialisation, its Keras form
 * for export and import, and its forward and backward passes on a worker. The network (network.ts),
 * the step driver (worker/network-step.ts) and the export know none by name: they call these.
 * The flat parameter vector is the seam: the all-reduce, Adam, the barriers and the checkpoints
 * see only that vector, never a layer.
 */
export interface LayerKind<S extends LayerSpec> {
  /** The output shape for `input`; throws a one-line message (without the layer's name) if it cannot take it. */
  outputShape(spec: S, input: Shape): Shape;
  /** How many parameters it has for `input`, in the order of its own storage layout. */
  paramCount(spec: S, input: Shape): number;
  /** Keras's initialisation (Glorot-uniform kernels, zero biases), drawn in storage order. */
  initialize(layer: PlacedLayer<S>, params: Float32Array, rng: Rng): void;
  /** The layer as tfjs-layers builds it; `inputShape` is given to the first layer. */
  kerasLayer(layer: PlacedLayer<S>, inputShape?: number[]): tf.layers.Layer;
  /** Its parameters (a subarray of the flat vector) as Keras's weights, and back. */
  toKerasWeights(layer: PlacedLayer<S>, params: Float32Array): tf.Tensor[];
  fromKerasWeights(layer: PlacedLayer<S>, weights: readonly Float32Array[], params: Float32Array): void;
  /**
   * Its passes on a worker, with buffers for `rows` samples at most; `next` is the layer its
   * output goes to (past a flatten), which may want it in a second layout (see Activations).
   */
  compute(layer: PlacedLayer<S>, rows: number, next: PlacedLayer | undefined): LayerCompute;
  /** The layer in PyTorch, for `npm run export` and `npm run import` (see src/export). */
  readonly torch: TorchForm<S>;
}

/** A parameter tensor of a layer's PyTorch module: its name in the module's state_dict, and its shape. */
export interface TorchTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * A kind of layer in PyTorch: the module the export's model.py builds for it, and its parameters
 * in PyTorch's layouts. The conversions are permutations, never arithmetic, so that a round trip
 * gives the same bits, and they serve any vector laid out as the parameters (Adam's moments too).
 */
export interface TorchForm<S extends LayerSpec> {
  /**
   * A Python expression that builds the layer's module from `nn` (torch.nn) and the classes of the
   * export's model.py (src/export/pytorch/model.py), whose modules take NCHW images.
   */
  module(layer: PlacedLayer<S>): string;
  /** Its parameter tensors, in the order of the module's state_dict; none for a layer without parameters. */
  tensors(layer: PlacedLayer<S>): TorchTensor[];
  /** Its slice of a parameter-shaped vector as the values of those tensors, row-major. */
  toTorch(layer: PlacedLayer<S>, values: Float32Array): Float32Array[];
  /** The tensors' values (as `tensors` shapes them) back into its slice of the vector. */
  fromTorch(layer: PlacedLayer<S>, tensors: readonly Float32Array[], values: Float32Array): void;
}

/** A layer's work on a worker. Tensors it creates inside `forward`/`backward` belong to the step's tidy scope. */
export interface LayerCompute {
  /** Uploads its parameters from the flat vector, once per step (all shards of the step share them). */
  prepare(params: Float32Array): void;
  /** Frees what `prepare` uploaded. */
  release(): void;
  /** The training pass: keeps what `backward` needs. */
  forward(input: Activations, context: StepContext): Activations;
  /**
   * Given the gradient of the loss at its output, writes its parameters' gradients into
   * `context.grad` (at its offset) and returns the gradient at its input, or undefined when no
   * layer before it has parameters.
   */
  backward(gradient: Activations, context: StepContext): Activations | undefined;
  /** The evaluation pass (no dropout), on any number of rows. */
  infer(input: Activations): Activations;
}
