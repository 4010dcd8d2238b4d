/**
 * Every layer's explicit gradients, as the worker computes them on tfjs-wasm, against two
 * references that share none of their code: tfjs autodiff (tf.grads) on tfjs's plain-JS `cpu`
 * backend, which has the convolution gradient kernels that wasm lacks, built from Keras-layout
 * weights; and central finite differences of a float64 forward pass written out below, on the
 * trainer's own parameter layout. Small random shapes, odd sizes, both paddings, even kernels, and
 * the branches of the convolution's filter gradient: a first layer with more filters than taps
 * (which computes dW^T), and shards over several of the float64-summed chunks. Errors are measured
 * tensor by tensor, each against its own largest gradient, so that a wrong small tensor (an early
 * bias) is not hidden by a large one.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keeps } from '../dist/src/model/layers/dropout.js';
import type { ConvSpec } from '../dist/src/model/layers/conv.js';
import { fromKerasWeights, toKerasWeights } from '../dist/src/model/keras.js';
import { buildNetwork } from '../dist/src/model/network.js';
import { parseLayers } from '../dist/src/model/spec.js';
import { winogradPlan } from '../dist/src/model/winograd.js';
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
  /** The fixture's images (default 10), and the shard `[start, end)` of their order whose gradient is taken (default [2, 8)). */
  readonly images?: number;
  readonly shard?: readonly [number, number];
  /** Of the input images. @default 1 */
  readonly channels?: number;
  /**
   * The step's shards, for a network whose layers sum over the whole step (a batch
   * normalisation): the gradient checked is the step's, their sum, over the batch they make up.
   */
  readonly spans?: readonly (readonly [number, number])[];
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
    name: 'a first conv on colour images (3 input channels, 27 taps for 4 filters), valid, and a pool',
    layers: 'conv:4:3,pool,flatten,dense:3',
    height: 7,
    width: 6,
    channels: 3,
  },
  {
    name: 'a first conv on colour images with more filters than taps (27 <= 28: the transposed filter gradient)',
    layers: 'conv:28:3:same,flatten,dense:3',
    height: 4,
    width: 3,
    channels: 3,
  },
  {
    name: 'dense layers on flattened colour images (the MLP on 3 channels)',
    layers: 'flatten,dense:5,dense:3',
    height: 3,
    width: 4,
    channels: 3,
  },
  {
    name: 'a pool into a dense layer wider than the shard',
    layers: 'conv:2:3:same,pool,flatten,dense:9,dense:3',
    height: 6,
    width: 6,
  },
  {
    // 3*3*1 = 9 taps <= 12 filters, in the first layer: the filter gradient as dW^T = dZ^T · cols,
    // the branch that --model cnn (32 filters) and examples/sequential.ts (16) take.
    name: 'a first conv with more filters than taps (its filter gradient transposed)',
    layers: 'conv:12:3:same,pool,flatten,dense:3',
    height: 7,
    width: 6,
  },
  {
    // A convolution sums its filter gradient in chunks of 4096 / positions samples, rounded down
    // to a power of two, at most 16, aligned to the epoch's order. The first conv has 16 x 17 = 272
    // positions, 8 samples per chunk, so the shard [7, 17) is the chunks [7, 8), [8, 16) and
    // [16, 17), in the transposed branch; the second has 7 x 7 = 49 positions, 16 per chunk:
    // [7, 16) and [16, 17), in the other branch, which also gives the input gradient.
    name: 'a shard over several float64-summed chunks, in both branches of the filter gradient',
    layers: 'conv:12:3:same,pool,conv:3:2:valid,pool:3,flatten,dense:3',
    height: 16,
    width: 17,
    images: 24,
    shard: [7, 17],
  },
  {
    name: "Winograd's filter gradient: a same 3x3 conv of 8 input channels, partial tiles both ways",
    layers: 'conv:8:1,conv:4:3:same,flatten,dense:3',
    height: 5,
    width: 6,
  },
  {
    name: "Winograd's filter gradient: a valid linear 3x3 conv of 8 input channels, a partial row of tiles",
    layers: 'conv:8:1,conv:4:3:valid:linear,flatten,dense:3',
    height: 7,
    width: 6,
  },
  // Batch normalisation takes the statistics of the whole step's batch: each shard's gradient
  // depends on the others', so the step's summed gradient is checked, over shards of 3 and 5.
  {
    name: 'a batch normalisation of a linear conv, then a relu, over shards of 3 and 5 images',
    layers: 'conv:3:3:same:linear,bn,relu,pool,flatten,dense:3',
    height: 6,
    width: 5,
    spans: [
      [1, 4],
      [4, 9],
    ],
  },
  {
    name: 'a batch normalisation of a linear dense layer (in columns for 3 images, in rows for 5 once wider), a relu',
    layers: 'flatten,dense:5:linear,bn:0.9,relu,dense:4,bn:0.99:0.01,dense:3',
    height: 4,
    width: 3,
    spans: [
      [1, 4],
      [4, 9],
    ],
  },
  {
    name: 'a batch normalisation first, on the images (no input gradient), and one after a pool',
    layers: 'bn,conv:2:3:same,pool,bn,conv:3:3:same,flatten,dense:3',
    height: 6,
    width: 6,
    channels: 2,
    spans: [
      [0, 3],
      [3, 3],
      [3, 8],
    ],
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
  // Moving statistics (a mean, a variance) of 0.5 to 1.5, so that evaluation uses values of its own.
  const state = Float32Array.from({ length: network.stateCount }, () => 0.5 + next());
  const pixels = c.height * c.width * (c.channels ?? 1);
  const count = c.images ?? 10;
  const images = Uint8Array.from({ length: count * pixels }, () => Math.floor(next() * 256));
  const labels = Uint8Array.from({ length: count }, (_, i) => i % CLASSES);
  const order = Int32Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const spans: readonly (readonly [number, number])[] = c.spans ?? [c.shard ?? [2, 8]];
  const [start, end] = [spans[0][0], (spans.at(-1) as [number, number])[1]];
  return {
    network,
    params,
    state,
    images,
    labels,
    order,
    count,
    spans,
    batch: { images, labels, order, start, end },
  };
}
type Fixture = ReturnType<typeof fixture>;

/**
 * The worker's computation of shards `[start, end)` of the fixture's order in one step, on one
 * thread, parameters prepared and released around it as in a step.
 */
function workerGradients(
  f: Fixture,
  spans: readonly (readonly [number, number])[],
  runner = new NetworkRunner(f.network, Math.max(...spans.map(([start, end]) => end - start))),
) {
  const shards = spans.map(([start, end], index) => ({
    index,
    start,
    end,
    grad: new Float64Array(f.network.paramCount).fill(3),
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

/** The worker's computation of the fixture's step (its shard, alone, or its shards): their summed gradient and score. */
function workerGradient(f: Fixture) {
  const shards = workerGradients(f, f.spans);
  const grad = new Float32Array(f.network.paramCount);
  for (const shard of shards) for (let i = 0; i < grad.length; i++) grad[i] += shard.grad[i];
  const score = { lossSum: 0, correct: 0 };
  for (const shard of shards) {
    score.lossSum += shard.score.lossSum;
    score.correct += shard.score.correct;
  }
  return { grad: shards.length === 1 ? shards[0].grad : grad, score };
}

/** The dropout mask value of a unit, as the definition (the `keeps` hash) gives it. */
function maskValue(rate: number, layer: number, sample: number, unit: number): number {
  return keeps(rate, SEED, layer, STEP, sample, unit) ? 1 / (1 - rate) : 0;
}

/**
 * The step's summed cross-entropy in float64, straight from the definitions, on the trainer's
 * layout, and how many samples the largest logit gets right; `training` applies dropout, and batch
 * normalisation with the batch's statistics (else the moving ones, the state's).
 */
function scoreF64(f: Fixture, params: ArrayLike<number>, training = true): { lossSum: number; correct: number } {
  const pixels = f.network.input[0] * f.network.input[1] * f.network.input[2];
  const samples = Array.from(f.order.subarray(f.batch.start, f.batch.end));
  let batch = samples.map((sample) =>
    Array.from(f.images.subarray(sample * pixels, (sample + 1) * pixels), (v) => v / 255),
  );
  for (const layer of f.network.layers) {
    if (layer.spec.kind === 'bn') {
      batch = batchNormF64(layer, batch, params, training ? undefined : f.state);
      continue;
    }
    batch = batch.map((a, r) => layerF64(layer, a, samples[r], params, training));
  }
  let total = 0;
  let correct = 0;
  batch.forEach((a, r) => {
    const sample = samples[r];
    const max = Math.max(...a);
    const logSum = max + Math.log(a.reduce((s, v) => s + Math.exp(v - max), 0));
    total += logSum - a[f.labels[sample]];
    if (a.indexOf(max) === f.labels[sample]) correct++;
  });
  return { lossSum: total, correct };
}

/**
 * Keras's batch normalisation of a batch over its last axis in float64: with the batch's mean and
 * biased variance, or with `state`'s moving ones when given.
 */
function batchNormF64(
  layer: Fixture['network']['layers'][number],
  batch: number[][],
  params: ArrayLike<number>,
  state: Float32Array | undefined,
): number[][] {
  if (layer.spec.kind !== 'bn') throw new Error('not a batch normalisation');
  const { epsilon } = layer.spec;
  const channels = layer.input[layer.input.length - 1];
  const mean = new Float64Array(channels);
  const variance = new Float64Array(channels);
  if (state === undefined) {
    const n = (batch.length * batch[0].length) / channels;
    for (const a of batch) a.forEach((v, i) => (mean[i % channels] += v / n));
    for (const a of batch) a.forEach((v, i) => (variance[i % channels] += (v - mean[i % channels]) ** 2 / n));
  } else {
    for (let c = 0; c < channels; c++) {
      mean[c] = state[layer.stateOffset + c];
      variance[c] = state[layer.stateOffset + channels + c];
    }
  }
  const at = layer.offset;
  return batch.map((a) =>
    a.map((v, i) => {
      const c = i % channels;
      return ((v - mean[c]) / Math.sqrt(variance[c] + epsilon)) * params[at + c] + params[at + channels + c];
    }),
  );
}

/** One sample's values through a layer other than a batch normalisation, in float64. */
function layerF64(
  layer: Fixture['network']['layers'][number],
  a: number[],
  sample: number,
  params: ArrayLike<number>,
  dropout: boolean,
): number[] {
  const { spec, input, output, offset } = layer;
  if (spec.kind === 'conv') {
    const [h, w, cin] = input;
    const [oh, ow, cout] = output;
    const k = spec.kernel;
    const pad = spec.padding === 'same' ? Math.floor((k - 1) / 2) : 0;
    const bias = offset + k * k * cin * cout;
    const z = new Float64Array(oh * ow * cout);
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++) {
        const out = (y * ow + x) * cout;
        for (let co = 0; co < cout; co++) z[out + co] = params[bias + co];
        for (let ky = 0; ky < k; ky++)
          for (let kx = 0; kx < k; kx++) {
            const iy = y + ky - pad;
            const ix = x + kx - pad;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue; // the zero padding
            for (let ci = 0; ci < cin; ci++) {
              const v = a[(iy * w + ix) * cin + ci];
              const tap = offset + ((ky * k + kx) * cin + ci) * cout;
              for (let co = 0; co < cout; co++) z[out + co] += params[tap + co] * v;
            }
          }
        if (spec.activation === 'relu') for (let co = 0; co < cout; co++) z[out + co] = Math.max(0, z[out + co]);
      }
    a = Array.from(z);
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
  } else if (spec.kind === 'relu') {
    a = a.map((v) => Math.max(0, v));
  }
  return a;
}

/** tf.grads of the same summed loss on the cpu backend, with Keras-layout weights and tfjs's own ops. */
function autodiffGradient(f: Fixture): { grad: Float32Array; loss: number } {
  const { network } = f;
  const [height, width, channels] = network.input;
  const pixels = height * width * channels;
  const samples = Array.from(f.order.subarray(f.batch.start, f.batch.end));
  const x = tf.tensor4d(
    samples.flatMap((s) => Array.from(f.images.subarray(s * pixels, (s + 1) * pixels), (v) => v / 255)),
    [samples.length, height, width, channels],
  );
  const y = tf.oneHot(
    tf.tensor1d(
      samples.map((s) => f.labels[s]),
      'int32',
    ),
    CLASSES,
  );
  // The trained weights only: the moving statistics play no part in a training step's loss.
  const weights = network.layers.map((layer) =>
    toKerasWeights(layer, f.params, f.state).filter((_, i) => layer.weights[i].state !== true),
  );
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
      } else if (spec.kind === 'bn') {
        const { mean, variance } = tf.moments(a, [...Array(a.rank - 1).keys()]);
        const normalised = tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, spec.epsilon)));
        a = tf.add(tf.mul(normalised, p[at]), p[at + 1]);
        at += 2;
      } else if (spec.kind === 'relu') {
        a = tf.relu(a);
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
    const trained = expected.slice(at, at + count).map((t) => t.dataSync() as Float32Array);
    const values = layer.weights.map((weight) =>
      weight.state === true ? new Float32Array(weight.shape[0]) : (trained.shift() as Float32Array),
    );
    fromKerasWeights(layer, values, grad, new Float32Array(f.network.stateCount));
    at += count;
  }
  tf.dispose([x, y, flat, expected, masks.filter((m) => m !== undefined)]);
  return { grad, loss };
}

/**
 * Each weight and bias tensor of the network: where it lies in the flat parameter vector, and
 * whether it is the bias of a layer a batch normalisation follows, whose gradient is zero (the
 * normalisation takes the mean out).
 */
function tensorsOf(network: Fixture['network']): { name: string; from: number; to: number; zero: boolean }[] {
  return network.layers.flatMap((layer) => {
    let at = layer.offset;
    const normalised = network.layers[layer.index + 1]?.spec.kind === 'bn';
    return layer.weights
      .filter((weight) => weight.state !== true)
      .map((weight) => {
        const size = weight.shape.reduce((a, b) => a * b, 1);
        at += size;
        const name = `layer ${layer.index + 1} (${layer.spec.kind}) ${weight.name}`;
        return { name, from: at - size, to: at, zero: normalised && weight.name === 'bias' };
      });
  });
}

/**
 * For each tensor, the largest difference from the reference over the reference's largest
 * magnitude in that tensor. Every tensor must have a gradient: a check of zeros would be empty;
 * one that is zero by construction is measured against the largest gradient of all.
 */
function relativeErrors(network: Fixture['network'], actual: Float32Array | Float64Array, expected: Float32Array) {
  const largest = expected.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
  return Object.fromEntries(
    tensorsOf(network).map(({ name, from, to, zero }) => {
      let scale = 0;
      let error = 0;
      for (let i = from; i < to; i++) {
        scale = Math.max(scale, Math.abs(expected[i]));
        error = Math.max(error, Math.abs(actual[i] - expected[i]));
      }
      if (zero) return [name, error / largest];
      expect(scale, `${name} has no gradient`).toBeGreaterThan(0);
      return [name, error / scale];
    }),
  );
}

/** Expects every tensor's relative error (see relativeErrors) below `limit`, naming those above it. */
function expectClose(
  network: Fixture['network'],
  actual: Float32Array | Float64Array,
  expected: Float32Array,
  limit: number,
) {
  const errors = relativeErrors(network, actual, expected);
  expect(Object.entries(errors).filter(([, e]) => !(e < limit))).toEqual([]);
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
    expectClose(f.network, grad, reference.grad, 1e-5);
  });

  it('match central finite differences of the float64 loss', () => {
    const f = fixture(c);
    const { grad, score } = workerGradient(f);
    const expected = scoreF64(f, f.params);
    expect(score.lossSum).toBeCloseTo(expected.lossSum, 4);
    expect(score.correct).toBe(expected.correct);
    // Small enough that no relu or pooling window changes its choice between the two points (at
    // 1e-5 some did, among the 24-image case's 30,000 pre-activations); in float64 the difference
    // still rounds to ~1e-9 of the loss.
    const h = 1e-7;
    const p64 = Float64Array.from(f.params);
    const numeric = new Float32Array(p64.length);
    for (let i = 0; i < p64.length; i++) {
      const saved = p64[i];
      p64[i] = saved + h;
      const up = scoreF64(f, p64).lossSum;
      p64[i] = saved - h;
      const down = scoreF64(f, p64).lossSum;
      p64[i] = saved;
      numeric[i] = (up - down) / (2 * h);
    }
    expectClose(f.network, grad, numeric, 1e-4);
    // The check is not empty: many parameters have a gradient (those of dead relu units have none).
    expect(numeric.filter((g) => g !== 0).length).toBeGreaterThan(p64.length / 3);
  });

  it('evaluate to the float64 loss and correct answers without dropout, in chunks of 1, 3, 4 and 10 rows', () => {
    const f = fixture(c);
    const inOrder = Int32Array.from({ length: f.count }, (_, i) => i);
    const expected = scoreF64({ ...f, order: inOrder, batch: { ...f.batch, start: 0, end: f.count } }, f.params, false);
    // The check is not empty: some answers are right and some wrong.
    expect(expected.correct).toBeGreaterThan(0);
    expect(expected.correct).toBeLessThan(f.count);
    const runner = new NetworkRunner(f.network, 10);
    runner.prepare(f.params, f.state);
    for (const rows of [1, 3, 4, 10]) {
      let lossSum = 0;
      let correct = 0;
      for (let start = 0; start < f.count; start += rows) {
        const score = runner.evaluate({
          images: f.images,
          labels: f.labels,
          start,
          end: Math.min(f.count, start + rows),
        });
        lossSum += score.lossSum;
        correct += score.correct;
      }
      expect(lossSum, `in chunks of ${rows}`).toBeCloseTo(expected.lossSum, 4);
      expect(correct, `in chunks of ${rows}`).toBe(expected.correct);
    }
    runner.release();
  });
});

/**
 * Convolutions wide enough for every pass to take Winograd's F(4x4, 3x3) by the rule, partial
 * tiles in each: finite differences on an evenly spread sample of their thousands of parameters.
 */
const WIDE_CASES: Case[] = [
  {
    name: 'a same 3x3 conv of 32 channels, 5 x 6',
    layers: 'conv:32:1,conv:32:3:same,flatten,dense:3',
    height: 5,
    width: 6,
  },
  {
    name: 'a valid linear 3x3 conv of 32 channels into a pool, 7 x 6',
    layers: 'conv:32:1,conv:32:3:valid:linear,pool,flatten,dense:3',
    height: 7,
    width: 6,
  },
];

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

  // Not for a batch normalisation, whose shards' passes depend on each other by design.
  it.each([...CASES, ...WIDE_CASES].filter((c) => c.spans === undefined))(
    'computes several shards layer by layer as it computes each alone, bit for bit, an empty one among them: $name',
    (c) => {
      const f = fixture(c);
      // The fixture's shard in the pieces of a step of 4 workers on one thread.
      const { start, end } = f.batch;
      const spans: [number, number][] = [
        [start, start + 2],
        [start + 2, start + 2],
        [start + 2, start + 5],
        [start + 5, end],
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

describe.each(WIDE_CASES)("explicit gradients, Winograd's algorithm in every pass: $name", (c) => {
  it('take Winograd in all three passes, and equal tf.grads of the same loss on the cpu backend', async () => {
    const f = fixture(c);
    const winograd = f.network.layers[1];
    expect(winogradPlan(winograd.spec as ConvSpec, winograd.input)).toEqual({
      tile: 4,
      forward: true,
      inputGradient: true,
      filterGradient: true,
    });
    const { grad, score } = workerGradient(f);
    await tf.setBackend('cpu');
    const reference = autodiffGradient(f);
    await tf.setBackend('wasm');
    expect(score.lossSum).toBeCloseTo(reference.loss, 4);
    expectClose(f.network, grad, reference.grad, 1e-5);
  });

  it('match central finite differences of the float64 loss on 160 of the parameters', () => {
    const f = fixture(c);
    const { grad } = workerGradient(f);
    const h = 1e-7; // as in the cases above: no relu or pooling window changes its choice
    const p64 = Float64Array.from(f.params);
    const sample = Array.from({ length: 160 }, (_, i) => Math.floor((i * p64.length) / 160));
    const numeric = sample.map((i) => {
      const saved = p64[i];
      p64[i] = saved + h;
      const up = scoreF64(f, p64).lossSum;
      p64[i] = saved - h;
      const down = scoreF64(f, p64).lossSum;
      p64[i] = saved;
      return (up - down) / (2 * h);
    });
    // The sample's largest difference over its largest magnitude: a sample has no whole tensors.
    const scale = Math.max(...numeric.map(Math.abs));
    const error = Math.max(...sample.map((p, k) => Math.abs(grad[p] - numeric[k])));
    expect(error / scale).toBeLessThan(1e-4);
    expect(numeric.filter((g) => g !== 0).length).toBeGreaterThan(sample.length / 3);
  });
});
