import { describe, expect, it } from 'vitest';
import { kindOf } from '../dist/src/model/kinds.js';
import { buildNetwork, trainingFlops } from '../dist/src/model/network.js';
import { formatLayers, parseLayers, presetLayers } from '../dist/src/model/spec.js';

describe('layer lists', () => {
  it('read the grammar with its defaults, and write it back the same', () => {
    const layers = parseLayers(
      'conv:32:3, conv:8:5:linear:same ,bn,relu,pool,pool:3,flatten,dense:64:linear,bn:0.9,bn:0.99:0.01,dropout:0.25,dense:10',
      'x',
    );
    expect(layers).toEqual([
      { kind: 'conv', filters: 32, kernel: 3, padding: 'valid', activation: 'relu' },
      { kind: 'conv', filters: 8, kernel: 5, padding: 'same', activation: 'linear' },
      { kind: 'bn', momentum: 0.99, epsilon: 0.001 },
      { kind: 'relu' },
      { kind: 'pool', size: 2 },
      { kind: 'pool', size: 3 },
      { kind: 'flatten' },
      { kind: 'dense', units: 64, activation: 'linear' },
      { kind: 'bn', momentum: 0.9, epsilon: 0.001 },
      { kind: 'bn', momentum: 0.99, epsilon: 0.01 },
      { kind: 'dropout', rate: 0.25 },
      { kind: 'dense', units: 10, activation: 'softmax' },
    ]);
    expect(parseLayers(formatLayers(layers), 'x')).toEqual(layers);
    expect(formatLayers(layers)).toBe(
      'conv:32:3:valid,conv:8:5:same:linear,bn,relu,pool,pool:3,flatten,dense:64:linear,bn:0.9,bn:0.99:0.01,dropout:0.25,dense:10',
    );
    expect(formatLayers(presetLayers('cnn', 10))).toBe(
      'conv:32:3:same,pool,conv:64:3:same,pool,flatten,dense:128,dropout:0.5,dense:10',
    );
  });

  it('refuse what they cannot read, in one line naming the layer and its position', () => {
    const cases: [string, string][] = [
      ['', '--layers: no layers given; expected conv, pool, flatten, dense, dropout, bn or relu'],
      [
        'conv:32:3,conv2',
        '--layers: unknown layer "conv2" at position 2; expected conv, pool, flatten, dense, dropout, bn or relu',
      ],
      ['conv:0:3', '--layers: "conv:0:3" at position 1: FILTERS must be an integer between 1 and 1024, got "0"'],
      ['conv:8:3:full', '--layers: "conv:8:3:full" at position 1: expected relu or linear, got "full"'],
      ['conv:8:3:same:valid', '--layers: "conv:8:3:same:valid" at position 1: padding given twice'],
      ['pool:2:2', '--layers: "pool:2:2" at position 1: too many parts (pool takes at most 1)'],
      ['flatten:1', '--layers: "flatten:1" at position 1: too many parts (flatten takes none)'],
      ['dense', '--layers: "dense" at position 1: needs UNITS, e.g. dense:128'],
      ['dense:10:tanh', '--layers: "dense:10:tanh" at position 1: expected relu or linear or softmax, got "tanh"'],
      ['dropout:1', '--layers: "dropout:1" at position 1: RATE must be at least 0 and less than 1, got "1"'],
      ['bn:2', '--layers: "bn:2" at position 1: MOMENTUM must be at least 0 and less than 1, e.g. bn:0.99, got "2"'],
      [
        'bn:0.9:0',
        '--layers: "bn:0.9:0" at position 1: EPSILON must be above 0 and below 1, e.g. bn:0.99:0.001, got "0"',
      ],
      ['bn:x', '--layers: "bn:x" at position 1: MOMENTUM must be at least 0 and less than 1, e.g. bn:0.99, got "x"'],
      ['bn:0.9:0.1:1', '--layers: "bn:0.9:0.1:1" at position 1: too many parts (bn takes at most 2)'],
      ['relu:6', '--layers: "relu:6" at position 1: too many parts (relu takes none)'],
    ];
    for (const [text, message] of cases) expect(() => parseLayers(text, '--layers')).toThrow(message);
    // A batch normalisation may come first (it normalises the images), not last: the output is dense.
    const image = { height: 28, width: 28 };
    expect(buildNetwork(parseLayers('bn,flatten,dense:10', 'x'), image, 10, 'x').layers[0].stateCount).toBe(2);
    expect(() => buildNetwork(parseLayers('flatten,dense:10,bn', 'x'), image, 10, '--layers')).toThrow(
      '--layers: the last layer must be dense:10 with softmax (one unit per class), got bn',
    );
  });
});

describe('trainingFlops', () => {
  it("counts the MLP's multiply-adds as 2 FLOPs: forward, weight gradients, and the second layer's input gradient", () => {
    // forward 784*128 + 128*10 = 101,632 MACs; weight gradients as many; input gradient of the
    // second layer 1,280 MACs: 2 * (101,632 + 101,632 + 1,280) = 409,088 FLOPs.
    const mlp = buildNetwork(presetLayers('mlp', 10), { height: 28, width: 28 }, 10, 'model');
    expect(trainingFlops(mlp)).toBe(409_088);
  });

  it('counts the CNN preset', () => {
    // conv1, 28x28x32 outputs of 3*3*1 inputs: 225,792 MACs, forward and filter gradient: 903,168
    // conv2, 14x14x64 outputs of 3*3*32: 3,612,672 MACs, forward, filter and input gradient: 21,676,032
    // dense 3136 -> 128: 401,408 MACs: 2,408,448; dense 128 -> 10: 1,280 MACs: 7,680. Total 24,995,328.
    const cnn = buildNetwork(presetLayers('cnn', 10), { height: 28, width: 28 }, 10, 'model');
    expect(trainingFlops(cnn)).toBe(24_995_328);
    expect(cnn.paramCount).toBe(320 + 18_496 + 401_536 + 1_290);
  });
});

describe('each kind of layer', () => {
  it('reads its own Keras settings back: the same settings, shapes and spec, and the weights the trainer stores', () => {
    const specs = parseLayers('conv:4:3:same:linear,conv:2:2,pool:3,flatten,dropout:0.25,dense:6:linear,dense:10', 'x');
    const network = buildNetwork(specs, { height: 11, width: 9 }, 10, 'x');
    const fail = (...why: unknown[]): never => {
      throw new Error(JSON.stringify(why));
    };
    for (const layer of network.layers) {
      const { keras } = kindOf(layer.spec);
      const settings = keras.settings(layer.spec);
      const shapes = keras.shapes(settings, layer.input, fail);
      expect(shapes.settings).toEqual(settings);
      expect(shapes.output).toEqual(layer.output);
      expect(keras.spec(shapes.settings, fail)).toEqual(layer.spec);
    }
    // 11x9x1 -> same 3x3, 4 filters: 11x9x4 -> valid 2x2, 2 filters: 10x8x2 -> pool 3: 3x2x2 -> 12 -> 6 -> 10.
    expect(network.layers.map((layer) => layer.output)).toEqual([
      [11, 9, 4],
      [10, 8, 2],
      [3, 2, 2],
      [12],
      [12],
      [6],
      [10],
    ]);
    expect(network.layers.map((layer) => layer.weights.map((w) => [w.name, w.shape]))).toEqual([
      [
        ['kernel', [3, 3, 1, 4]],
        ['bias', [4]],
      ],
      [
        ['kernel', [2, 2, 4, 2]],
        ['bias', [2]],
      ],
      [],
      [],
      [],
      [
        ['kernel', [12, 6]],
        ['bias', [6]],
      ],
      [
        ['kernel', [6, 10]],
        ['bias', [10]],
      ],
    ]);
    expect(network.paramCount).toBe(40 + 34 + 78 + 70);
  });
});
