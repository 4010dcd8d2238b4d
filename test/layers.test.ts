/**
 * Every layer's explicit gradients, as the worker computes them on tfjs-wasm, against two
 * references that share none of their code: tfjs autodiff (tf.grads) on tfjs's plain-JS `cpu`
 * backend, which has the convolution gradient kernels that wasm lacks, built from Keras-layout
 * weights; and central finite differences of a float64 forward pass written out below, on the
 * trainer's own parameter layout. Small random shapes, odd sizes, both paddings, even kernels.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keeps } from '../dist/src/model/layers/dropout.js';
import { fromKerasWeights, toKerasWeights } from '../dist/src/model/keras.js';
import { buildNetwork } from '../dist/src/model/network.js';
import { parseLayers } from '../dist/src/model/spec.js';
import { SharedCollective } from '../dist/src/worker/collective.js';
import { NetworkRunner } from '../dist/src/worker/network-step.js';

const CLASSES = 3;
const SEED = 11;
const STEP = 4;

interface Case {
  readonly name: string;
  readonly layers: string;
  readonly height: number;
  readonly width: number;
}

const CASES: Case[] = [
  {
    name: 'a same 3x3 conv, a 2x2 pool of an odd size, dense',
    layers: 'conv:3:3:same,pool,flatten,dense:4,dense:3',
    height: 7,
    width: 6,
  },
  {
    name: 'a valid linear conv, an even-kernel same conv (asymmetric padding), a 3x3 pool that drops a partial window',
    layers: 'conv:2:3:valid:linear,conv:3:2:same,pool:3,flatten,dense:3',
    height: 8,
    width: 7,
  },
  {
    name: 'the input gradient of a same 3x3 conv after a valid one',
    layers: 'conv:2:3:valid:linear,conv:3:3:same,pool,flatten,dense:3',
    height: 9,
    width: 8,
  },
  {
    name: 'dropout on dense activations (columns layout)',
    layers: 'conv:2:3:same,flatten,dense:6,dropout:0.4,dense:3',
    height: 5,
    width: 5,
  },
  {
    name: 'dropout on images (rows layout) before a flatten',
    layers: 'conv:2:3:same,dropout:0.3,flatten,dense:3',
    height: 5,
    width: 4,
  },
  {
    name: 'dense layers only (the MLP), two hidden',
    layers: 'flatten,dense:5,dense:4:linear,dense:3',
    height: 4,
    width: 4,
  },
  {
    name: 'dense layers wider than the shard (their forward pass in columns), the last in rows',
    layers: 'flatten,dense:8,dense:7:linear,dense:3',
    height: 4,
    width: 3,
  },
  {
    name: 'a pool into a dense layer wider than the shard',
    layers: 'conv:2:3:same,pool,flatten,dense:9,dense:3',
    height: 6,
    width: 6,
  },
];

/** A deterministic generator for the fixtures. */
function generator(seed: number) {
  let state = seed;
  return () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
}

function fixture(c: Case) {
  const network = buildNetwork(parseLayers(c.layers, 'layers'), c, CLASSES, 'layers');
  const next = generator(c.height * 31 + c.width);
  const params = Float32Array.from({ length: network.paramCount }, () => next() - 0.5);
  const state = new Float32Array(network.stateCount);
  const pixels = c.height * c.width;
  const images = Uint8Array.from({ length: 10 * pixels }, () => Math.floor(next() * 256));
  const labels = Uint8Array.from({ length: 10 }, (_, i) => i % CLASSES);
  const order = Int32Array.from([9, 3, 0, 7, 4, 1, 8, 2, 6, 5]);
  return { network, params, state, images, labels, order, batch: { images, labels, order, start: 2, end: 8 } };
}
type Fixture = ReturnType<typeof fixture>;

/**
 * The worker's computation of shards `[start, end)` of the fixture's order, in one step of
 * `samples` samples, parameters prepared and released around it as in a step.
 */
function workerGradients(f: Fixture, spans: readonly [number, number][], runner = new NetworkRunner(f.network, 8)) {
  const shards = spans.map(([start, end], index) => ({
    index,
    start,
    end,
    grad: new Float32Array(f.network.paramCount).fill(3),
    lossSum: NaN,
    correct: NaN,
  }));
  const collective = SharedCollective.alone(shards.length, f.network.collectiveLength);
  collective.beginStep(spans.reduce((sum, [start, end]) => sum + end - start, 0));
  runner.prepare(f.params, f.state);
  runner.gradients(f, shards, { seed: SEED, step: STEP, collective, state: f.state, updatesState: true });
  runner.release();
  return shards.map(({ grad, lossSum, correct }) => ({ grad, score: { lossSum, correct } }));
}

/** The worker's computation of the fixture's shard, alone. */
function workerGradient(f: Fixture) {
  return workerGradients(f, [[f.batch.start, f.batch.end]])[0];
}

/** The dropout mask value of a unit, as the definition (the `keeps` hash) gives it. */
function maskValue(rate: number, layer: number, sample: number, unit: number): number {
  return keeps(rate, SEED, layer, STEP, sample, unit) ? 1 / (1 - rate) : 0;
}

/** The shard's summed cross-entropy in float64, straight from the definitions, on the trainer's layout. */
function lossF64(f: Fixture, params: ArrayLike<number>, dropout = true): number {
  let total = 0;
  for (let r = f.batch.start; r < f.batch.end; r++) {
    const sample = f.order[r];
    const pixels = f.network.input[0] * f.network.input[1];
    let a: number[] = Array.from(f.images.subarray(sample * pixels, (sample + 1) * pixels), (v) => v / 255);
    for (const layer of f.network.layers) {
      const { spec, input, output, offset } = layer;
      if (spec.kind === 'conv') {
        const [h, w, cin] = input;
        const [oh, ow, cout] = output;
        const k = spec.kernel;
        const pad = spec.padding === 'same' ? Math.floor((k - 1) / 2) : 0;
        const z = new Array<number>(oh * ow * cout).fill(0);
        for (let y = 0; y < oh; y++)
          for (let x = 0; x < ow; x++)
            for (let co = 0; co < cout; co++) {
              let sum = params[offset + k * k * cin * cout + co];
              for (let ky = 0; ky < k; ky++)
                for (let kx = 0; kx < k; kx++)
                  for (let ci = 0; ci < cin; ci++) {
                    const iy = y + ky - pad;
                    const ix = x + kx - pad;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                    sum += params[offset + ((ky * k + kx) * cin + ci) * cout + co] * a[(iy * w + ix) * cin + ci];
                  }
              z[(y * ow + x) * cout + co] = spec.activation === 'relu' ? Math.max(0, sum) : sum;
            }
        a = z;
      } else if (spec.kind === 'pool') {
        const [, w, c] = input;
        const [oh, ow] = output;
        const s = spec.size;
        const z: number[] = [];
        for (let y = 0; y < oh; y++)
          for (let x = 0; x < ow; x++)
            for (let ch = 0; ch < c; ch++) {
              let max = -Infinity;
              for (let dy = 0; dy < s; dy++)
                for (let dx = 0; dx < s; dx++) max = Math.max(max, a[((y * s + dy) * w + x * s + dx) * c + ch]);
              z.push(max);
            }
        a = z;
      } else if (spec.kind === 'dense') {
        const n = input[0];
        const z = Array.from({ length: spec.units }, (_, o) => {
          let sum = params[offset + spec.units * n + o];
          for (let i = 0; i < n; i++) sum += params[offset + i * spec.units + o] * a[i];
          return sum;
        });
        a = spec.activation === 'relu' ? z.map((v) => Math.max(0, v)) : z;
      } else if (spec.kind === 'dropout' && dropout) {
        a = a.map((v, u) => v * maskValue(spec.rate, layer.index, sample, u));
      }
    }
    const max = Math.max(...a);
    const logSum = max + Math.log(a.reduce((s, v) => s + Math.exp(v - max), 0));
    total += logSum - a[f.labels[sample]];
  }
  return total;
}

/** tf.grads of the same summed loss on the cpu backend, with Keras-layout weights and tfjs's own ops. */
function autodiffGradient(f: Fixture): { grad: Float32Array; loss: number } {
  const { network } = f;
  const [height, width] = network.input;
  const pixels = height * width;
  const samples = Array.from(f.order.subarray(f.batch.start, f.batch.end));
  const x = tf.tensor4d(
    samples.flatMap((s) => Array.from(f.images.subarray(s * pixels, (s + 1) * pixels), (v) => v / 255)),
    [samples.length, height, width, 1],
  );
  const y = tf.oneHot(
    tf.tensor1d(
      samples.map((s) => f.labels[s]),
      'int32',
    ),
    CLASSES,
  );
  const weights = network.layers.map((layer) => toKerasWeights(layer, f.params, f.state));
  const masks = network.layers.map((layer) => {
    if (layer.spec.kind !== 'dropout') return undefined;
    const units = layer.input.reduce((a, b) => a * b, 1);
    const rate = layer.spec.rate;
    const values = samples.flatMap((s) => Array.from({ length: units }, (_, u) => maskValue(rate, layer.index, s, u)));
    return tf.tensor(values, [samples.length, ...layer.input]);
  });
  const flat = weights.flat();
  const lossOf = (...p: tf.Tensor[]) => {
    let a: tf.Tensor = x;
    let at = 0;
    network.layers.forEach((layer, i) => {
      const { spec } = layer;
      if (spec.kind === 'conv') {
        const z = tf.add(tf.conv2d(a as tf.Tensor4D, p[at] as tf.Tensor4D, 1, spec.padding), p[at + 1]);
        a = spec.activation === 'relu' ? tf.relu(z) : z;
        at += 2;
      } else if (spec.kind === 'pool') {
        a = tf.maxPool(a as tf.Tensor4D, spec.size, spec.size, 'valid');
      } else if (spec.kind === 'flatten') {
        a = tf.reshape(a, [samples.length, -1]);
      } else if (spec.kind === 'dense') {
        const z = tf.add(tf.matMul(a, p[at]), p[at + 1]);
        a = spec.activation === 'relu' ? tf.relu(z) : z;
        at += 2;
      } else {
        a = tf.mul(a, masks[i] as tf.Tensor);
      }
    });
    return tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(a))));
  };
  const expected = tf.grads(lossOf)(flat);
  const loss = lossOf(...flat).dataSync()[0];
  const grad = new Float32Array(network.paramCount);
  let at = 0;
  for (const layer of network.layers) {
    const count = weights[layer.index].length;
    const values = expected.slice(at, at + count).map((t) => t.dataSync() as Float32Array);
    fromKerasWeights(layer, values, grad, new Float32Array(f.network.stateCount));
    at += count;
  }
  tf.dispose([x, y, flat, expected, masks.filter((m) => m !== undefined)]);
  return { grad, loss };
}

function maxRelativeError(actual: Float32Array, expected: Float32Array): number {
  const scale = Math.max(...Array.from(expected, Math.abs));
  return Math.max(...Array.from(actual, (v, i) => Math.abs(v - expected[i]))) / scale;
}

beforeAll(async () => {
  await tf.setBackend('wasm');
});

afterAll(async () => {
  await tf.setBackend('wasm');
});

describe.each(CASES)('explicit gradients: $name', (c) => {
  it('equal tf.grads of the same loss on the cpu backend', async () => {
    const f = fixture(c);
    const { grad, score } = workerGradient(f);
    await tf.setBackend('cpu');
    const reference = autodiffGradient(f);
    await tf.setBackend('wasm');
    expect(score.lossSum).toBeCloseTo(reference.loss, 4);
    expect(maxRelativeError(grad, reference.grad)).toBeLessThan(1e-5);
  });

  it('match central finite differences of the float64 loss', () => {
    const f = fixture(c);
    const { grad, score } = workerGradient(f);
    expect(score.lossSum).toBeCloseTo(lossF64(f, f.params), 4);
    const h = 1e-5;
    const p64 = Float64Array.from(f.params);
    const numeric = new Float32Array(p64.length);
    for (let i = 0; i < p64.length; i++) {
      const saved = p64[i];
      p64[i] = saved + h;
      const up = lossF64(f, p64);
      p64[i] = saved - h;
      const down = lossF64(f, p64);
      p64[i] = saved;
      numeric[i] = (up - down) / (2 * h);
    }
    expect(maxRelativeError(grad, numeric)).toBeLessThan(1e-4);
    // The check is not empty: many parameters have a gradient (those of dead relu units have none).
    expect(numeric.filter((g) => g !== 0).length).toBeGreaterThan(p64.length / 3);
  });

  it('evaluate to the float64 loss without dropout, in any chunking', () => {
    const f = fixture(c);
    const runner = new NetworkRunner(f.network, 4);
    runner.prepare(f.params, f.state);
    const all = { images: f.images, labels: f.labels, start: 0, end: 10 };
    const chunks = [0, 4, 8].map((start) => runner.evaluate({ ...all, start, end: Math.min(10, start + 4) }));
    runner.release();
    const expected = lossF64(
      {
        ...f,
        batch: { ...all, order: Int32Array.from({ length: 10 }, (_, i) => i) },
        order: Int32Array.from({ length: 10 }, (_, i) => i),
      },
      f.params,
      false,
    );
    expect(chunks.reduce((s, r) => s + r.lossSum, 0)).toBeCloseTo(expected, 4);
  });
});

describe('the network runner', () => {
  it('writes a zero gradient for an empty shard and leaks no tensors', () => {
    const f = fixture(CASES[0]);
    const before = tf.memory().numTensors;
    const runner = new NetworkRunner(f.network, 8);
    const [empty] = workerGradients(f, [[f.batch.start, f.batch.start]], runner);
    expect(empty.score).toEqual({ lossSum: 0, correct: 0 });
    expect(empty.grad.every((g) => g === 0)).toBe(true);
    workerGradients(f, [[f.batch.start, f.batch.end]], runner);
    runner.prepare(f.params, f.state);
    runner.evaluate({ images: f.images, labels: f.labels, start: 0, end: 8 });
    runner.release();
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each(CASES)(
    'computes several shards layer by layer as it computes each alone, bit for bit, an empty one among them: $name',
    (c) => {
      const f = fixture(c);
      // The fixture's shard [2, 8) in the pieces of a step of 4 workers on one thread.
      const spans: [number, number][] = [
        [2, 4],
        [4, 4],
        [4, 7],
        [7, 8],
      ];
      const together = workerGradients(f, spans);
      const alone = spans.map((span) => workerGradients(f, [span])[0]);
      expect(together).toEqual(alone);
      expect(together[2].grad.some((g) => g !== 0)).toBe(true);
    },
  );
});

describe('dropout masks', () => {
  it('keep about 1 - rate of the units, and differ between samples, steps, layers and seeds', () => {
    const kept = (f: (u: number) => boolean) => Array.from({ length: 20_000 }, (_, u) => f(u)).filter(Boolean).length;
    expect(kept((u) => keeps(0.5, 1, 3, 7, 42, u)) / 20_000).toBeCloseTo(0.5, 1);
    expect(kept((u) => keeps(0.2, 1, 3, 7, 42, u)) / 20_000).toBeCloseTo(0.8, 1);
    const mask = (seed: number, layer: number, step: number, sample: number) =>
      Array.from({ length: 64 }, (_, u) => keeps(0.5, seed, layer, step, sample, u)).join();
    const base = mask(1, 3, 7, 42);
    expect(new Set([base, mask(2, 3, 7, 42), mask(1, 4, 7, 42), mask(1, 3, 8, 42), mask(1, 3, 7, 43)]).size).toBe(5);
    expect(mask(1, 3, 7, 42)).toBe(base);
  });
});
