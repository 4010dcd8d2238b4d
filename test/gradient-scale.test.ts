/**
 * The scale of the reduced gradient. N workers against 1 cannot see it: both would be wrong alike,
 * and Adam divides a uniform factor out of its update (m / sqrt(v)). Adam's first moment keeps it:
 * after the first step, m = beta1 * 0 + (1 - beta1) * g = 0.1 * g, where g is the global batch's
 * mean gradient, the sum of the shards' summed gradients over the batch's size. Here g is worked
 * out with tf.grads on tfjs's cpu backend, shard by shard, from the same initial parameters and
 * the samples of the session's first batch.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSession } from '../dist/src/coordinator/node-platform.js';
import { type Dataset, loadFashionMnist } from '../dist/src/index.js';
import { shardOf } from '../dist/src/sharding.js';
import { DEBIAN_DIR } from './helpers.js';

const HIDDEN = 16;
const CLASSES = 10;
const PIXELS = 784;

let slice: Dataset;

beforeAll(async () => {
  const data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  const count = 320;
  slice = {
    ...data,
    train: {
      images: data.train.images.subarray(0, count * PIXELS),
      labels: data.train.labels.subarray(0, count),
      count,
    },
  };
});

/**
 * The gradient of the summed cross-entropy of `samples` for Flatten -> Dense(16, relu) ->
 * Dense(10), with tfjs's own ops on the cpu backend, laid out as the flat parameter vector (Keras's
 * kernel `[in, out]`, then the bias, layer by layer).
 */
function summedGradient(params: Float32Array, samples: number[]): Float64Array {
  const gradient = tf.tidy(() => {
    const pixels = samples.flatMap((s) => Array.from(slice.train.images.subarray(s * PIXELS, (s + 1) * PIXELS)));
    const x = tf.div(tf.tensor2d(pixels, [samples.length, PIXELS]), 255);
    const y = tf.oneHot(
      tf.tensor1d(
        samples.map((s) => slice.train.labels[s]),
        'int32',
      ),
      CLASSES,
    );
    const sizes = [PIXELS * HIDDEN, HIDDEN, HIDDEN * CLASSES, CLASSES];
    const shapes = [[PIXELS, HIDDEN], [HIDDEN], [HIDDEN, CLASSES], [CLASSES]];
    let at = 0;
    const weights = sizes.map((size, i) => tf.tensor(params.slice(at, (at += size)), shapes[i]));
    const loss = (w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor) => {
      const hidden = tf.relu(tf.add(tf.matMul(x, w1 as tf.Tensor2D), b1));
      const logits = tf.add(tf.matMul(hidden, w2 as tf.Tensor2D), b2);
      return tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(logits))));
    };
    const grads = tf.grads((...w: tf.Tensor[]) => loss(w[0], w[1], w[2], w[3]))(weights);
    return tf.concat(grads.map((g) => tf.reshape(g, [-1])));
  });
  const values = Float64Array.from(gradient.dataSync());
  gradient.dispose();
  return values;
}

describe('the reduced gradient', () => {
  it.each([
    { workers: 3, batchSize: 32, images: 320 },
    { workers: 4, batchSize: 30, images: 320 },
    // An epoch of 20 images at a batch of 32: the step's batch is the 20, not 32.
    { workers: 3, batchSize: 32, images: 20 },
  ])(
    "is the batch's mean gradient: after one step, Adam's m is 0.1 x the shards' summed gradients over the batch's samples ($workers workers, batch $batchSize, $images images)",
    async ({ workers, batchSize, images }) => {
      const data = {
        ...slice,
        train: {
          ...slice.train,
          images: slice.train.images.subarray(0, images * PIXELS),
          labels: slice.train.labels.subarray(0, images),
          count: images,
        },
      };
      const session = createSession(data, { workers, batchSize, model: `flatten,dense:${HIDDEN},dense:${CLASSES}` });
      let initial: Float32Array;
      let state: ReturnType<typeof session.state>;
      try {
        session.beginEpoch();
        initial = session.shared.optimizer.params.slice();
        await session.runSteps(0, 1);
        state = session.state();
      } finally {
        await session.close();
      }
      const { m } = state.adam;
      const order = Array.from(state.epoch.order);
      await tf.setBackend('cpu');
      const sum = new Float64Array(initial.length);
      const samples = Math.min(batchSize, images);
      for (let k = 0; k < workers; k++) {
        const { start, end } = shardOf(0, samples, k, workers);
        summedGradient(initial, order.slice(start, end)).forEach((g, i) => (sum[i] += g));
      }
      const expected = sum.map((g) => (0.1 * g) / samples);
      // Tensor by tensor: the largest difference over the tensor's largest value.
      const bounds = [0, PIXELS * HIDDEN, (PIXELS + 1) * HIDDEN, (PIXELS + 1) * HIDDEN + HIDDEN * CLASSES, m.length];
      for (let t = 0; t < 4; t++) {
        let scale = 0;
        let error = 0;
        for (let i = bounds[t]; i < bounds[t + 1]; i++) {
          scale = Math.max(scale, Math.abs(expected[i]));
          error = Math.max(error, Math.abs(m[i] - expected[i]));
        }
        expect(scale, `tensor ${t + 1}`).toBeGreaterThan(0);
        expect(error / scale, `tensor ${t + 1}`).toBeLessThan(1e-5);
      }
    },
  );
});
