import type { Rng } from '../rng.js';
import type { Activations, Layout, Shape, StepContext } from './compute.js';
import type { Fail, KerasWeight, LayerShapes, Settings } from './keras-shapes.js';

/** A layer of a network, placed: its spec, the shapes around it and its slice of the flat parameter vector. */
export interface PlacedLayer<S = unknown> {
  readonly spec: S;
  /** 0-based position in the network. */
  readonly index: number;
  readonly input: Shape;
  readonly output: Shape;
  /**
   * Its Keras weights, in Keras's order and layouts: its parameters are those that are trained,
   * back to back, and its state the others (see KerasWeight.state).
   */
  readonly weights: readonly KerasWeight[];
  /** Where its parameters start in the flat parameter vector, and how many there are. */
  readonly offset: number;
  readonly paramCount: number;
  /** Where its state starts in the state vector, and how many values it has (0 for most kinds). */
  readonly stateOffset: number;
  readonly stateCount: number;
  /** Whether a layer before it has parameters, so that its backward pass must give its input's gradient. */
  readonly needsInputGradient: boolean;
}

/**
 * What a kind of layer is, all in its one file (layers/): its grammar, its Keras form both ways
 * and the shape rule that gives its weights, its cost, the layout it wants, its initialisation, and
 * its forward and backward passes on a worker. Everything else (the grammar's parser, the network,
 * the step driver, export, import, loadModel) calls these and knows no kind by name; kinds.ts lists
 * them, and the compiler names what a new kind lacks. The flat parameter vector is the seam: the
 * all-reduce, Adam, the barriers and the checkpoints see only that vector (and the checkpoints the
 * state vector beside it), never a layer.
 *
 * A layer's parameters are its trained Keras weights, in Keras's order and layouts, back to back,
 * and its state (values it keeps up to date itself, not trained: a batch normalisation's moving
 * statistics) its other Keras weights, likewise, in a second vector beside the parameters, which
 * the checkpoints, the snapshots and export carry too, and Adam never sees. Export and import copy
 * both as they are.
 */
export interface LayerKind<S extends { readonly kind: string }> {
  readonly grammar: Grammar<S>;
  readonly keras: KerasForm<S>;
  /**
   * Throws a one-line message (without the layer's name) when the trainer cannot run it on `input`:
   * an input of the wrong rank, or one too small to leave an output. Its output and weights are
   * then those of its Keras form (`keras.shapes`).
   */
  check(spec: S, input: Shape): void;
  /** Multiply-adds of one sample's forward pass (0 for a layer without weights): see trainingFlops. */
  macs(layer: PlacedLayer<S>): number;
  /**
   * Multiply-adds of one sample's passes as it computes them, where an algorithm with fewer
   * multiplications takes a pass (Winograd's, for a convolution): see performedFlops. Absent,
   * each pass does `macs`.
   */
  performedMacs?(layer: PlacedLayer<S>): PassMacs;
  /**
   * The most values one shard of it writes into the collective's slot for one sum (see
   * Collective), which sizes the collective's shared memory; 0 when its passes never call it.
   */
  collectiveLength(layer: PlacedLayer<S>): number;
  /**
   * The second layout it wants its input in, given the one the layer after it wants (undefined at
   * the end of the network): a layer that only reshapes passes the next one's on.
   */
  inputLayout(layer: PlacedLayer<S>, next: Layout | undefined): Layout | undefined;
  /**
   * Keras's initialisation (Glorot-uniform kernels, zero biases), drawn in storage order, into its
   * parameters and its state (its slices of the two vectors).
   */
  initialize(layer: PlacedLayer<S>, params: Float32Array, state: Float32Array, rng: Rng): void;
  /**
   * Its passes on a worker, with buffers for `rows` samples at most. `outputLayout` is the second
   * layout the next layer wants (its `inputLayout`), which this one writes too when it costs
   * nothing more.
   */
  compute(layer: PlacedLayer<S>, rows: number, outputLayout: Layout | undefined): LayerCompute;
  /** The layer in PyTorch, for `npm run export` and `npm run import` (see src/export). */
  readonly torch: TorchForm<S>;
}

/** Multiply-adds of one sample's three training passes. */
export interface PassMacs {
  readonly forward: number;
  readonly filterGradient: number;
  readonly inputGradient: number;
}

/** A parameter tensor of a layer's PyTorch module: its name in the module's state_dict, and its shape. */
export interface TorchTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * A kind of layer in PyTorch: the module the export's model.py builds for it, its parameters in
 * PyTorch's layouts, and its state as the module's buffers. The conversions are permutations,
 * never arithmetic, so that a round trip gives the same bits, and they serve any vector laid out
 * as the parameters (Adam's moments too).
 */
export interface TorchForm<S> {
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
  /**
   * The names of its buffers in the module's state_dict, one for each of its state's Keras weights
   * (those of `PlacedLayer.weights` marked state), in their order: each holds that weight's values
   * as they are (a batch normalisation's moving statistics are vectors in both frameworks). None
   * for a kind without state.
   */
  buffers(layer: PlacedLayer<S>): string[];
}

/** A kind's form in a layer list: `conv:32:3:same`, its word then its parts, separated by colons. */
export interface Grammar<S> {
  /** Its line in LAYERS_GRAMMAR: the form, `conv:FILTERS:KERNEL[:same|valid][:relu|linear]`, and what it is. */
  readonly usage: string;
  readonly meaning: string;
  /** The spec from the parts after its word; `last` says whether it ends the list. */
  parse(parts: readonly string[], read: PartReader, last: boolean): S;
  /** The inverse of `parse`: the word and the parts, defaults left out. */
  format(spec: S, last: boolean): string;
}

/** Reads a layer's parts; every error names the layer and its position in the list. */
export interface PartReader {
  /** An error `<option>: "<layer>" at position <n>: <why>`. */
  fail(why: string): Error;
  /**
   * A whole number in `range`; `name` is the part's name (`filters`, shown as FILTERS), `example` a
   * layer that has it.
   */
  integer(
    value: string | undefined,
    name: string,
    range: { readonly min: number; readonly max: number },
    example: string,
  ): number;
  /** One of `options`, or `fallback` when the part is absent. */
  choice<T extends string>(value: string | undefined, options: readonly T[], fallback: T): T;
  /** Throws when the layer has more than `count` parts. */
  atMost(count: number): void;
}

/**
 * A kind's Keras form: its class, and its config both ways. Configs are read as model.json holds
 * them, in snake_case (`tf.Sequential.toJSON` gives the same form for a model in memory).
 */
export interface KerasForm<S> {
  /** As model.json and tfjs's `getClassName()` name it: `Conv2D`. */
  readonly className: string;
  /**
   * What of the class the trainer trains, in the message that refuses the rest: `Conv2D (square
   * kernel, stride 1, ...)`.
   */
  readonly supported: string;
  /**
   * Keras's rule for the class, as tfjs-layers builds it: the settings checked and rebuilt, the
   * weights it creates and its output's shape. It takes every config tfjs can run, those the
   * trainer does not train too (loadModel reads them), and calls `fail` on the others.
   */
  shapes(config: Settings, input: readonly number[], fail: Fail): LayerShapes;
  /** The spec of settings that `shapes` gave; throws `unsupported(why)` for those the trainer cannot train. */
  spec(settings: Settings, unsupported: (why: string) => Error): S;
  /** The spec's settings, as `shapes` gives them back: what export hands tfjs. */
  settings(spec: S): Settings;
}

/**
 * A layer's work on a worker. A training pass runs layer by layer over all the shards of the step
 * that the thread computes (one, or several when fewer threads compute than there are workers),
 * so that a layer can sum over the whole step with the collective (see Collective) between its
 * shards' computations. Tensors it creates inside `forward`/`backward` belong to the step's tidy
 * scope.
 */
export interface LayerCompute {
  /**
   * Uploads its parameters from the flat vector, and reads its state, once per step (all shards of
   * the step share them) and before an evaluation.
   */
  prepare(params: Float32Array, state: Float32Array): void;
  /** Frees what `prepare` uploaded. */
  release(): void;
  /** The training pass over `context.shards` (`inputs[j]` is shard j's, possibly none): keeps what `backward` needs. */
  forward(inputs: readonly Activations[], context: StepContext): Activations[];
  /**
   * Given the gradients of the loss at its outputs, writes each shard's parameter gradients into
   * its slot (`context.shards[j].grad`, at the layer's offset) and returns the gradients at its
   * inputs, or undefined when no layer before it has parameters.
   */
  backward(gradients: readonly Activations[], context: StepContext): Activations[] | undefined;
  /**
   * The evaluation pass (no dropout), on any number of rows: each worker evaluates its part of the
   * test split on its own, so this pass has no collective, and uses the state as it is.
   */
  infer(input: Activations): Activations;
}
