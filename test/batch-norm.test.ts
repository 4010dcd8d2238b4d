/**
 * Batch normalisation on real workers: its statistics are the whole step's, so 1, 2 and 3 workers
 * train the same network; its moving statistics are updated once a step (not once per worker), as
 * worked out by hand from the batches; a run repeats itself bit for bit and resumes exactly from a
 * checkpoint, moving statistics included; a tf.sequential with tf.layers.batchNormalization trains,
 * and tfjs's predictions of the result give our evaluation's accuracy. Its gradients are
 * test/layers.test.ts's.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../dist/src/coordinator/checkpoint.js';
import { nodePlatform } from '../dist/src/coordinator/node-platform.js';
import { Session } from '../dist/src/coordinator/session.js';
import { type Dataset, loadFashionMnist, train } from '../dist/src/index.js';
import { buildNetwork } from '../dist/src/model/network.js';
import { parseLayers } from '../dist/src/model/spec.js';
import { DEBIAN_DIR, firstImages, tempDir } from './helpers.js';

const CNN = 'conv:4:3:same:linear,bn,relu,pool,conv:6:3:same:linear,bn,relu,pool,flatten,dense:12,dense:10';
const MLP = 'flatten,dense:24:linear,bn,relu,dense:16:linear,bn:0.9,relu,dense:10';

let slice: Dataset;

beforeAll(async () => {
  const data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  // 320 real training images at a global batch of 32: one epoch is 10 steps; 500 test images.
  const count = 320;
  const tests = 500;
  slice = firstImages(data, count, tests);
});

/** The trained model's Keras weights, moving statistics included. */
function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync<'float32'>().slice());
}

async function trainedWeights(model: string, workers: number, batchSize = 32) {
  const result = await train({ data: slice, model, workers, epochs: 1, batchSize, seed: 5 });
  return { weights: weightsOf(result.model), history: result.history, layers: result.model.layers };
}

function maxAbsDifference(a: Float32Array[], b: Float32Array[]): number {
  let max = 0;
  a.forEach((values, i) => values.forEach((v, j) => (max = Math.max(max, Math.abs(v - b[i][j])))));
  return max;
}

/**
 * The largest differences between two runs of the same network: of the biases of the layers a
 * batch normalisation follows, with that normalisation's moving mean, and of all the other
 * weights. Those biases have a zero gradient (the normalisation takes the mean out) but for
 * float32 rounding, which differs between worker counts, and Adam's normalised steps turn it into
 * steps of up to the learning rate; the moving mean averages them. They change nothing else.
 */
function differences(a: tf.layers.Layer[], b: tf.layers.Layer[]): { normalised: number; others: number } {
  const result = { normalised: 0, others: 0 };
  a.forEach((layer, i) => {
    const beforeNorm = a[i + 1]?.getClassName() === 'BatchNormalization';
    const afterLayer = layer.getClassName() === 'BatchNormalization' && i > 0;
    const [x, y] = [layer, b[i]].map((l) => l.getWeights().map((w) => w.dataSync<'float32'>()));
    x.forEach((values, j) => {
      const which = (beforeNorm && j === 1) || (afterLayer && j === 2) ? 'normalised' : 'others';
      values.forEach((v, k) => (result[which] = Math.max(result[which], Math.abs(v - y[j][k]))));
    });
  });
  return result;
}

describe('synchronized batch normalisation on real workers', () => {
  it.each([
    ['a CNN', CNN],
    ['an MLP', MLP],
  ])(
    '%s: 2 and 3 workers give the parameters and moving statistics of one to 1e-5 after 10 steps',
    async (_, model) => {
      const one = await trainedWeights(model, 1);
      for (const workers of [2, 3]) {
        const { normalised, others } = differences(one.layers, (await trainedWeights(model, workers)).layers);
        expect(others).toBeLessThan(1e-5);
        // Well under the 1e-2 that 10 steps of Adam at its rate of 1e-3 can take them.
        expect(normalised).toBeLessThan(1e-3);
      }
      // Training moved them, the moving statistics too: the check is not empty.
      const bn = one.layers.find((layer) => layer.getClassName() === 'BatchNormalization');
      const [, , movingMean, movingVariance] = (bn as tf.layers.Layer).getWeights().map((w) => w.dataSync());
      expect(movingMean.some((v) => Math.abs(v) > 1e-3)).toBe(true);
      expect(movingVariance.some((v) => Math.abs(v - 1) > 1e-3)).toBe(true);
    },
  );

  it('a batch that does not divide evenly, one worker of 4 left without a sample: the same as one worker', async () => {
    // 320 / 96: 3 steps of 96 and one of 32; 3 samples per step over 4 workers at the end leave one idle.
    const one = await trainedWeights(MLP, 1, 96);
    const four = await trainedWeights(MLP, 4, 96);
    const { normalised, others } = differences(one.layers, four.layers);
    expect(others).toBeLessThan(1e-5);
    expect(normalised).toBeLessThan(1e-3);
  });

  it('repeats itself bit for bit with the same seed and worker count', async () => {
    const first = await trainedWeights(CNN, 2);
    const second = await trainedWeights(CNN, 2);
    expect(maxAbsDifference(first.weights, second.weights)).toBe(0);
    const numbers = (h: typeof first.history) => h.map(({ seconds: _, ...rest }) => rest);
    expect(numbers(second.history)).toEqual(numbers(first.history));
  });

  it('resumes from a checkpoint taken mid-epoch to the bits of the run that was not stopped', async () => {
    const run = { data: slice, model: CNN, epochs: 1, batchSize: 32, workers: 2, seed: 9 };
    const whole = weightsOf((await train(run)).model);
    const dir = tempDir('bn-resume-');
    // Asked to stop before it starts, a run stops after its first step.
    await train({ ...run, checkpointDir: dir, interrupt: AbortSignal.abort() }).catch(() => undefined);
    const checkpoint = await readCheckpoint(dir);
    expect([checkpoint.epochsDone, checkpoint.stepsDone]).toEqual([0, 1]);
    // The moving statistics have moved once from their start (means 0, variances 1).
    expect(checkpoint.state.some((v) => v !== 0 && v !== 1)).toBe(true);
    const resumed = weightsOf((await train({ data: slice, resume: checkpoint, workers: 2 })).model);
    expect(maxAbsDifference(whole, resumed)).toBe(0);
  });

  it("updates the moving statistics once a step, with the batch's mean and biased variance: 4 steps on 3 workers, by hand", async () => {
    // A first batch normalisation sees the images themselves: its statistics are the batches' pixels'.
    const layers = 'bn:0.8,flatten,dense:10';
    const network = buildNetwork(parseLayers(layers, 'x'), slice, 10, 'x');
    const config = {
      workers: 3,
      epochs: 1,
      batchSize: 48,
      seed: 3,
      model: layers,
      adam: { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
      schedule: 'constant',
    } as const;
    const session = new Session({ platform: nodePlatform, data: slice, config, network });
    try {
      expect(Array.from(session.shared.state)).toEqual([0, 1]);
      session.beginEpoch();
      const order = session.shared.order.slice();
      expect(await session.runSteps(0, 4)).toBe(4);
      let mean = 0;
      let variance = 1;
      let bessel = 1;
      const rate = 1 - 0.8;
      for (let step = 0; step < 4; step++) {
        let sum = 0;
        let squares = 0;
        const values = 48 * 784;
        for (let r = step * 48; r < (step + 1) * 48; r++) {
          for (let p = 0; p < 784; p++) {
            const v = Math.fround(slice.train.images[order[r] * 784 + p] / 255);
            sum += v;
            squares += v * v;
          }
        }
        const batchMean = sum / values;
        const batchVariance = squares / values - batchMean * batchMean;
        mean = Math.fround(mean * 0.8 + batchMean * rate);
        variance = Math.fround(variance * 0.8 + batchVariance * rate);
        bessel = Math.fround(bessel * 0.8 + ((batchVariance * values) / (values - 1)) * rate);
      }
      const [movingMean, movingVariance] = session.shared.state;
      // To float32 rounding (~1e-8 here); the variance is the biased one, tfjs-layers' (a
      // Bessel-corrected one, by 37,632 / 37,631, would be ~5e-7 away).
      expect(Math.abs(movingMean - mean)).toBeLessThan(1e-7);
      expect(Math.abs(movingVariance - variance)).toBeLessThan(1e-7);
      expect(Math.abs(movingVariance - bessel)).toBeGreaterThan(2e-7);
      expect(mean).toBeGreaterThan(0.1);
    } finally {
      await session.close();
    }
  });
});

describe('tf.layers.batchNormalization in a tf.sequential', () => {
  it("trains with train(), and tfjs's predictions of the trained model give our evaluation's accuracy", async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 4, kernelSize: 3, padding: 'same', activation: 'linear' }),
        // Moving statistics that catch up within the 10 steps: at Keras's 0.99 they would still be
        // mostly their initial values, which evaluation uses.
        tf.layers.batchNormalization({ momentum: 0.5 }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 16, activation: 'linear' }),
        tf.layers.batchNormalization({ momentum: 0.6, epsilon: 0.01 }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.dense({ units: 10, activation: 'softmax' }),
      ],
    });
    const result = await train({
      data: slice,
      model,
      workers: 2,
      epochs: 1,
      batchSize: 32,
      seed: 2,
      learningRate: 0.01,
    });
    const trained = result.model;
    const moving = trained.layers[1].getWeights()[2].dataSync();
    expect(moving.some((v) => v !== 0)).toBe(true);
    const images = tf.tensor4d(
      Float32Array.from(slice.test.images as Uint8Array, (v) => v / 255),
      [500, 28, 28, 1],
    );
    const answers = tf.tidy(() => (trained.predict(images) as tf.Tensor).argMax(1).dataSync());
    images.dispose();
    const correct = answers.filter((a, i) => a === slice.test.labels[i]).length;
    expect(correct / 500).toBe(result.history[0].testAccuracy);
    expect(correct / 500).toBeGreaterThan(0.3);
  });

  it('refuses configurations it does not train, in one line', async () => {
    const refused = async (layer: tf.layers.Layer) => {
      const model = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 2, kernelSize: 3, activation: 'linear' }),
          layer,
          tf.layers.flatten(),
          tf.layers.dense({ units: 10, activation: 'softmax' }),
        ],
      });
      const error = (await train({ data: slice, model, epochs: 1 }).catch((e: unknown) => e)) as Error;
      expect(error.message.split('\n')).toHaveLength(1);
      return error.message;
    };
    expect(await refused(tf.layers.batchNormalization({ axis: 1 }))).toMatch(
      /^model: layer 2 \(BatchNormalization "[^"]+"\) has axis 1, expected -1 \(the last axis, 3\); the trainer supports /,
    );
    expect(await refused(tf.layers.batchNormalization({ center: false }))).toMatch(/has center false \(no beta\)/);
    expect(await refused(tf.layers.batchNormalization({ scale: false }))).toMatch(/has scale false \(no gamma\)/);
    expect(await refused(tf.layers.batchNormalization({ gammaRegularizer: 'l1l2' }))).toMatch(
      /has gammaRegularizer .*, expected null/,
    );
    expect(await refused(tf.layers.activation({ activation: 'tanh' }))).toMatch(
      /Activation "[^"]+"\) has activation "tanh"; supported: relu/,
    );
  });
});
