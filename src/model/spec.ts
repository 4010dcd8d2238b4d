import { OptionError } from '../errors.js';
import { ALL_KINDS, kindNamed, kindOf, LAYER_KINDS, type LayerSpec } from './kinds.js';
import type { DenseSpec } from './layers/dense.js';
import type { PartReader } from './layer.js';

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

/** The grammar of a layer list, as `--help` and errors show it: a line per kind, from the kinds. */
export const LAYERS_GRAMMAR = (() => {
  const grammars = ALL_KINDS.map((kind) => kind.grammar);
  const width = Math.max(...grammars.map((grammar) => grammar.usage.length)) + 3;
  return [
    'layers separated by commas, each one of:',
    ...grammars.map((grammar) => `  ${grammar.usage.padEnd(width)}${grammar.meaning}`),
    'The last layer is dense with one unit per class. Example (the cnn preset):',
    `  ${formatLayers(presetLayers('cnn', 10))}`,
  ].join('\n');
})();

/**
 * Parses a layer list (see LAYERS_GRAMMAR), e.g. `conv:32:3,pool,flatten,dense:128,dense:10`.
 * `label` names the option in errors (`--layers`, or `model`). Shapes are checked later, against
 * the data (see `buildNetwork`).
 */
export function parseLayers(text: string, label: string): LayerSpec[] {
  const items = text.split(',').map((item) => item.trim());
  if (text.trim() === '') throw new OptionError(`${label}: no layers given; expected ${kindList()}`);
  return items.map((item, index) => parseLayer(item, index + 1, label, index === items.length - 1));
}

function parseLayer(item: string, position: number, label: string, last: boolean): LayerSpec {
  const [word, ...parts] = item.split(':');
  const kind = kindNamed(word);
  if (kind === undefined) {
    throw new OptionError(`${label}: unknown layer "${word}" at position ${position}; expected ${kindList()}`);
  }
  const fail = (why: string) => new OptionError(`${label}: "${item}" at position ${position}: ${why}`);
  const read: PartReader = {
    fail,
    integer(value, name, { min, max }, example) {
      const n = Number(value);
      if (value === undefined || value === '') throw fail(`needs ${name.toUpperCase()}, e.g. ${example}`);
      if (!Number.isInteger(n) || n < min || n > max) {
        throw fail(`${name.toUpperCase()} must be an integer between ${min} and ${max}, got "${value}"`);
      }
      return n;
    },
    choice(value, options, fallback) {
      if (value === undefined) return fallback;
      if (!options.includes(value as (typeof options)[number])) {
        throw fail(`expected ${options.join(' or ')}, got "${value}"`);
      }
      return value as (typeof options)[number];
    },
    atMost(count) {
      if (parts.length > count)
        throw fail(`too many parts (${word} takes ${count === 0 ? 'none' : `at most ${count}`})`);
    },
  };
  return kind.grammar.parse(parts, read, last);
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
  return kindOf(layer).grammar.format(layer, last);
}
