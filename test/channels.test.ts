/**
 * Colour images through the whole trainer: a first layer on 3 channels (conv and the MLP's
 * flatten), N workers against 1, the exported model's input shape and its metadata, a
 * tf.Sequential on colour images.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Dataset, loadFashionMnist, OptionError, train } from '../dist/src/index.js';
import { DEBIAN_DIR, tinted } from './helpers.js';

let colour: Dataset;

/** The first `count` images of a grey split, each in its class's tint. */
function tintedSplit(split: Dataset['train'], count: number): Dataset['train'] {
  const images = new Uint8Array(count * 784 * 3);
  for (let i = 0; i < count; i++)
    images.set(tinted((split.images as Uint8Array).subarray(i * 784, (i + 1) * 784), split.labels[i]), i * 784 * 3);
  return { images, labels: split.labels.slice(0, count), count };
}

beforeAll(async () => {
  const data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  colour = { ...data, channels: 3, train: tintedSplit(data.train, 640), test: tintedSplit(data.test, 1000) };
});

function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync<'float32'>().slice());
}

function maxAbsDifference(a: Float32Array[], b: Float32Array[]): number {
  let max = 0;
  a.forEach((values, i) => values.forEach((v, j) => (max = Math.max(max, Math.abs(v - b[i][j])))));
  return max;
}

describe('colour images (3 channels)', () => {
  for (const [name, model, first] of [
    ['the MLP', 'mlp', [28 * 28 * 3, 128]],
    ['a CNN', 'conv:8:3:same,pool,conv:16:3,pool,flatten,dense:32,dense:10', [3, 3, 3, 8]],
  ] as const) {
    it(`${name}: 1 worker and 3 give the same parameters after 20 steps (to 1e-5); the model takes [28, 28, 3]`, async () => {
      const options = { data: colour, model, epochs: 1, batchSize: 32, seed: 4 };
      const one = await train({ ...options, workers: 1 });
      const three = await train({ ...options, workers: 3 });
      expect(one.model.inputs[0].shape).toEqual([null, 28, 28, 3]);
      expect(one.model.getWeights()[0].shape).toEqual(first);
      expect(maxAbsDifference(weightsOf(one.model), weightsOf(three.model))).toBeLessThan(1e-5);
      // The saved model's own predictions score what the workers' evaluation reported.
      const predicted = tf.tidy(() => {
        const x = tf.div(tf.tensor4d(colour.test.images, [1000, 28, 28, 3], 'float32'), 255);
        return (one.model.predict(x, { batchSize: 1000 }) as tf.Tensor).argMax(1).dataSync();
      });
      const correct = predicted.filter((p, i) => p === colour.test.labels[i]).length;
      expect(correct / 1000).toBeCloseTo(one.testAccuracy, 3);
      expect(one.model.getUserDefinedMetadata()).toEqual({
        classNames: [...colour.classNames],
        image: { height: 28, width: 28, channels: 3 },
      });
    });
  }

  it('trains a tf.Sequential built for [28, 28, 3], and refuses one built for one channel', async () => {
    const layers = (channels: number) =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [28, 28, channels], filters: 4, kernelSize: 3, activation: 'relu' }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 10, activation: 'softmax' }),
        ],
      });
    const model = layers(3);
    const before = weightsOf(model);
    await train({ data: colour, model, workers: 2, epochs: 1, batchSize: 64 });
    expect(maxAbsDifference(before, weightsOf(model))).toBeGreaterThan(1e-3);
    await expect(train({ data: colour, model: layers(1), workers: 1, epochs: 1 })).rejects.toThrow(
      new OptionError(
        "model: its input is [28, 28, 1] per image, but the data's images are 28x28 with 3 channels: build it with inputShape [28, 28, 3]",
      ),
    );
  });

  it('refuses data of another channel count, or whose pixels do not match its channels', async () => {
    await expect(train({ data: { ...colour, channels: 2 }, workers: 1, epochs: 1 })).rejects.toThrow(
      'data must have 1 channel (grey) or 3 (red, green, blue), got 2',
    );
    await expect(train({ data: { ...colour, channels: 1 }, workers: 1, epochs: 1 })).rejects.toThrow(
      /^training data: 1505280 pixel values for 640 images of 784 values \(501760 expected\)/,
    );
  });
});
