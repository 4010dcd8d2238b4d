import { availableParallelism } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Dataset, loadFashionMnist, train } from '../dist/src/index.js';
import { DEBIAN_DIR } from './helpers.js';

/**
 * More workers than this machine's cores, so that the path where only one worker per core computes
 * and the others wait (worker/steps.ts) runs on any machine: 8 on up to 7 cores (2 here), one more
 * than the cores on a bigger machine, up to the limit of 64 workers.
 */
const cores = availableParallelism();
const overCores = Math.min(64, Math.max(8, cores + 1));

let slice: Dataset;

beforeAll(async () => {
  const data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  // 640 real training images at a global batch of 32: one epoch is 20 steps.
  const count = 640;
  slice = {
    ...data,
    train: { images: data.train.images.subarray(0, count * 784), labels: data.train.labels.subarray(0, count), count },
  };
});

async function trainedWeights(workers: number, batchSize = 32) {
  const result = await train({ data: slice, workers, epochs: 1, batchSize, seed: 5 });
  const weights = result.model.getWeights().map((w) => w.dataSync<'float32'>().slice());
  return { weights, history: result.history };
}

function maxAbsDifference(a: Float32Array[], b: Float32Array[]): number {
  let max = 0;
  a.forEach((values, i) => values.forEach((v, j) => (max = Math.max(max, Math.abs(v - b[i][j])))));
  return max;
}

describe('data parallelism', () => {
  it(`gives the parameters of one worker with 2, 4 and ${overCores} (more than the ${cores} cores): 20 steps from one seed agree to 1e-5`, async () => {
    expect(overCores, 'a machine of 64 cores or more cannot run more workers than cores').toBeGreaterThan(cores);
    const one = await trainedWeights(1);
    expect(one.weights.map((w) => w.length)).toEqual([784 * 128, 128, 128 * 10, 10]);
    for (const workers of [2, overCores])
      expect(maxAbsDifference(one.weights, (await trainedWeights(workers)).weights)).toBeLessThan(1e-5);
    const four = await trainedWeights(4);
    expect(maxAbsDifference(one.weights, four.weights)).toBeLessThan(1e-5);
    // And training did move them: the check would be empty if nothing had changed.
    const fresh = (
      await train({ data: slice, workers: 1, epochs: 1, batchSize: 32, seed: 5, learningRate: Number.MIN_VALUE })
    ).model
      .getWeights()
      .map((w) => w.dataSync<'float32'>().slice());
    expect(maxAbsDifference(one.weights, fresh)).toBeGreaterThan(1e-3);
    expect(one.history[0].loss).toBeCloseTo(four.history[0].loss, 5);
    expect(one.history[0].testAccuracy).toBeCloseTo(four.history[0].testAccuracy, 3);
  });

  it('agrees when the batch does not divide evenly and some workers get no sample', async () => {
    // 640 / 96 = 6 full steps and one of 64; 3 samples per step over 4 workers leaves one idle.
    const one = await trainedWeights(1, 96);
    const three = await trainedWeights(3, 96);
    expect(maxAbsDifference(one.weights, three.weights)).toBeLessThan(1e-5);
    const tiny = {
      ...slice,
      train: {
        ...slice.train,
        count: 30,
        images: slice.train.images.subarray(0, 30 * 784),
        labels: slice.train.labels.subarray(0, 30),
      },
    };
    const a = await train({ data: tiny, workers: 1, epochs: 1, batchSize: 3, seed: 2 });
    const b = await train({ data: tiny, workers: 4, epochs: 1, batchSize: 3, seed: 2 });
    const weightsOf = (r: typeof a) => r.model.getWeights().map((w) => w.dataSync<'float32'>().slice());
    expect(maxAbsDifference(weightsOf(a), weightsOf(b))).toBeLessThan(1e-5);
  });

  it('repeats itself exactly with the same seed and worker count', async () => {
    const first = await trainedWeights(2);
    const second = await trainedWeights(2);
    expect(maxAbsDifference(first.weights, second.weights)).toBe(0);
    const numbers = (h: typeof first.history) => h.map(({ seconds: _, ...rest }) => rest);
    expect(numbers(second.history)).toEqual(numbers(first.history));
  });
});
