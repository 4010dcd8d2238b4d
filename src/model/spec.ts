import { OptionError } from '../errors.js';

/**
 * The layers a model is made of, in the order data flows through them. Keras semantics: images are
 * NHWC (height, width, channels), kernels are initialised Glorot-uniform and biases to zero.
 */
export type LayerSpec = ConvSpec | PoolSpec | FlattenSpec | DenseSpec | DropoutSpec;

/** A 2-D convolution, stride 1. */
export interface ConvSpec {
  readonly kind: 'conv';
  readonly filters: number;
  /** The kernel is `kernel x kernel`. */
  readonly kernel: number;
  /** `valid`: no padding, the output shrinks by kernel - 1; `same`: zero-padded to keep the size. */
  readonly padding: 'valid' | 'same';
  readonly activation: 'relu' | 'linear';
}

/** Max pooling over `size x size` windows with stride `size` (a partial window at the edge is dropped). */
export interface PoolSpec {
  readonly kind: 'pool';
  readonly size: number;
}

/** Images to vectors, in NHWC order (as Keras's Flatten). */
export interface FlattenSpec {
  readonly kind: 'flatten';
}

/** A fully connected layer; the last layer of a model is one with softmax, one unit per class. */
export interface DenseSpec {
  readonly kind: 'dense';
  readonly units: number;
  readonly activation: 'relu' | 'linear' | 'softmax';
}

/** Inverted dropout while training (kept values scaled by 1 / (1 - rate)); nothing when evaluating. */
export interface DropoutSpec {
  readonly kind: 'dropout';
  readonly rate: number;
}

/** The shape of one sample between two layers: `[height, width, channels]` for images, `[features]` for vectors. */
export type Shape = readonly number[];

export const LAYER_KINDS = ['conv', 'pool', 'flatten', 'dense', 'dropout'] as const;

/** The grammar of a layer list, as `--help` and errors show it. */
export const LAYERS_GRAMMAR = `layers separated by commas, each one of:
  conv:FILTERS:KERNEL[:same|valid][:relu|linear]   2-D convolution, stride 1 (default valid, relu)
  pool[:SIZE]                                      max pooling SIZExSIZE, stride SIZE (default 2)
  flatten                                          images to vectors
  dense:UNITS[:relu|linear|softmax]                fully connected (default relu; the last: softmax)
  dropout:RATE                                     drops a fraction RATE of its inputs while training
The last layer is dense with one unit per class. Example (the cnn preset):
  ${'conv:32:3:same,pool,conv:64:3:same,pool,flatten,dense:128,dropout:0.5,dense:10'}`;

/** The named models: the tutorial's MLP (`hidden` widths) and the convolutional preset. */
export const PRESETS = ['mlp', 'cnn'] as const;
export type Preset = (typeof PRESETS)[number];

export function presetLayers(preset: Preset, classes: number, hidden: readonly number[] = [128]): LayerSpec[] {
  const dense = (units: number): DenseSpec => ({ kind: 'dense', units, activation: 'relu' });
  const output: DenseSpec = { kind: 'dense', units: classes, activation: 'softmax' };
  switch (preset) {
    case 'mlp':
      return [{ kind: 'flatten' }, ...hidden.map(dense), output];
    case 'cnn':
      return [
        { kind: 'conv', filters: 32, kernel: 3, padding: 'same', activation: 'relu' },
        { kind: 'pool', size: 2 },
        { kind: 'conv', filters: 64, kernel: 3, padding: 'same', activation: 'relu' },
        { kind: 'pool', size: 2 },
        { kind: 'flatten' },
        dense(128),
        { kind: 'dropout', rate: 0.5 },
        output,
      ];
  }
}

/** Ranges of the numbers in a layer; the sizes also bound what fits in memory. */
const LIMITS = {
  filters: { min: 1, max: 1024 },
  kernel: { min: 1, max: 64 },
  size: { min: 1, max: 64 },
  units: { min: 1, max: 8192 },
} as const;

/**
 * Parses a layer list (see LAYERS_GRAMMAR), e.g. `conv:32:3,pool,flatten,dense:128,dense:10`.
 * `label` names the option in errors (`--layers`, or `model`). Shapes are checked later, against
 * the data (see `buildNetwork`).
 */
export function parseLayers(text: string, label: string): LayerSpec[] {
  const items = text.split(',').map((item) => item.trim());
  if (text.trim() === '') throw new OptionError(`${label}: no layers given; expected ${kindList()}`);
  const layers = items.map((item, index) => parseLayer(item, index + 1, label));
  // A last dense layer without an activation is the output: softmax, as the grammar says.
  const last = layers.length - 1;
  const lastLayer = layers[last];
  if (lastLayer.kind === 'dense' && items[last].split(':').length < 3) {
    layers[last] = { ...lastLayer, activation: 'softmax' };
  }
  return layers;
}

function parseLayer(item: string, position: number, label: string): LayerSpec {
  const [name, ...args] = item.split(':');
  const where = `${label}: "${item}" at position ${position}`;
  const fail = (why: string) => new OptionError(`${where}: ${why}`);
  const integer = (value: string | undefined, what: keyof typeof LIMITS, example: string): number => {
    const { min, max } = LIMITS[what];
    const n = Number(value);
    if (value === undefined || value === '') throw fail(`needs ${what.toUpperCase()}, e.g. ${example}`);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw fail(`${what.toUpperCase()} must be an integer between ${min} and ${max}, got "${value}"`);
    }
    return n;
  };
  const choice = <T extends string>(value: string | undefined, options: readonly T[], fallback: T): T => {
    if (value === undefined) return fallback;
    if (!options.includes(value as T)) throw fail(`expected ${options.join(' or ')}, got "${value}"`);
    return value as T;
  };
  const noMore = (count: number) => {
    if (args.length > count) throw fail(`too many parts (${name} takes ${count === 0 ? 'none' : `at most ${count}`})`);
  };
  switch (name) {
    case 'conv': {
      noMore(4);
      const filters = integer(args[0], 'filters', 'conv:32:3');
      const kernel = integer(args[1], 'kernel', 'conv:32:3');
      // Padding and activation may come in either order: their words differ.
      const rest = args.slice(2);
      const padding = choice(
        rest.find((a) => a === 'same' || a === 'valid'),
        ['valid', 'same'] as const,
        'valid',
      );
      const activation = choice(
        rest.find((a) => a !== 'same' && a !== 'valid'),
        ['relu', 'linear'] as const,
        'relu',
      );
      if (rest.filter((a) => a === 'same' || a === 'valid').length > 1) throw fail('padding given twice');
      if (rest.filter((a) => a !== 'same' && a !== 'valid').length > 1) throw fail('activation given twice');
      return { kind: 'conv', filters, kernel, padding, activation };
    }
    case 'pool':
      noMore(1);
      return { kind: 'pool', size: args.length === 0 ? 2 : integer(args[0], 'size', 'pool:2') };
    case 'flatten':
      noMore(0);
      return { kind: 'flatten' };
    case 'dense':
      noMore(2);
      return {
        kind: 'dense',
        units: integer(args[0], 'units', 'dense:128'),
        activation: choice(args[1], ['relu', 'linear', 'softmax'] as const, 'relu'),
      };
    case 'dropout': {
      noMore(1);
      const rate = Number(args[0]);
      if (args[0] === undefined || args[0] === '') throw fail('needs RATE, e.g. dropout:0.5');
      if (!(rate >= 0 && rate < 1)) throw fail(`RATE must be at least 0 and less than 1, got "${args[0]}"`);
      return { kind: 'dropout', rate };
    }
    default:
      throw new OptionError(`${label}: unknown layer "${name}" at position ${position}; expected ${kindList()}`);
  }
}

function kindList(): string {
  return `${LAYER_KINDS.slice(0, -1).join(', ')} or ${LAYER_KINDS.at(-1)}`;
}

/** A layer list in the grammar `parseLayers` reads; `parseLayers(formatLayers(x))` gives x back. */
export function formatLayers(layers: readonly LayerSpec[]): string {
  return layers.map((layer, i) => formatLayer(layer, i === layers.length - 1)).join(',');
}

/** One layer in the grammar; `last` says whether it ends the list, where dense defaults to softmax. */
export function formatLayer(layer: LayerSpec, last = false): string {
  switch (layer.kind) {
    case 'conv':
      return `conv:${layer.filters}:${layer.kernel}:${layer.padding}${layer.activation === 'relu' ? '' : ':linear'}`;
    case 'pool':
      return layer.size === 2 ? 'pool' : `pool:${layer.size}`;
    case 'flatten':
      return 'flatten';
    case 'dense': {
      const implied = last ? 'softmax' : 'relu';
      return `dense:${layer.units}${layer.activation === implied ? '' : `:${layer.activation}`}`;
    }
    case 'dropout':
      return `dropout:${layer.rate}`;
  }
}
