/**
 * Convolutional networks through the whole trainer: 1 worker vs N, exact repeats, tf.Sequential
 * models, and the command line end to end on a subset of the real data.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { trainWithFaults } from '../dist/src/coordinator/node-platform.js';
import { buildNetwork } from '../dist/src/model/network.js';
import type { ConvSpec } from '../dist/src/model/layers/conv.js';
import { presetLayers } from '../dist/src/model/spec.js';
import { winogradPlan } from '../dist/src/model/winograd.js';
import {
  createTrainerThread,
  type Dataset,
  InterruptedError,
  loadFashionMnist,
  loadModel,
  OptionError,
  readCheckpoint,
  train,
  UnsupportedLayerError,
} from '../dist/src/index.js';
import { DEBIAN_DIR, gzip, idxBytes, runNode, settledOsThreads, tempDir, TRAIN_CLI } from './helpers.js';

/** Every kind of layer, small enough for quick tests. */
const SMALL_CNN = 'conv:8:3:same,pool,conv:8:3,pool,flatten,dense:32,dropout:0.5,dense:10';

let fashion: Dataset;

beforeAll(async () => {
  fashion = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
});

/** The first `train` training and `test` test images of Fashion-MNIST. */
function subset(train: number, test = fashion.test.count): Dataset {
  const cut = (split: Dataset['train'], count: number) => ({
    images: split.images.subarray(0, count * 784),
    labels: split.labels.subarray(0, count),
    count,
  });
  return { ...fashion, train: cut(fashion.train, train), test: cut(fashion.test, test) };
}

const weightsOf = (model: tf.LayersModel) => model.getWeights().map((w) => w.dataSync<'float32'>().slice());

/** The largest, over the tensors, of the norm of their difference relative to the norm of the first. */
function maxRelativeDifference(a: Float32Array[], b: Float32Array[]): number {
  return Math.max(
    ...a.map((values, i) => {
      let difference = 0;
      let norm = 0;
      values.forEach((v, j) => {
        difference += (v - b[i][j]) ** 2;
        norm += v * v;
      });
      return norm === 0 ? Math.sqrt(difference) : Math.sqrt(difference / norm);
    }),
  );
}

describe('a CNN trained data-parallel', () => {
  // 1,280 images at a global batch of 64: 20 steps, each with dropout masks; shards of 64, 32
  // and 16 samples, multiples of the convolutions' chunks.
  const run = (workers: number) =>
    train({ data: subset(1280, 500), model: SMALL_CNN, workers, epochs: 1, batchSize: 64, seed: 3 });

  it('gives the parameters of one worker with 2 and 4: 20 steps agree to 1e-5, relative', async () => {
    const one = await run(1);
    expect(one.model.layers.map((l) => l.getClassName())).toEqual([
      'Conv2D',
      'MaxPooling2D',
      'Conv2D',
      'MaxPooling2D',
      'Flatten',
      'Dense',
      'Dropout',
      'Dense',
    ]);
    for (const workers of [2, 4]) {
      const many = await run(workers);
      expect(maxRelativeDifference(weightsOf(one.model), weightsOf(many.model))).toBeLessThan(1e-5);
      expect(many.history[0].loss).toBeCloseTo(one.history[0].loss, 5);
    }
    // Training moved the weights: the comparison above would be empty otherwise.
    const untrained = await train({
      data: subset(1280, 500),
      model: SMALL_CNN,
      workers: 1,
      epochs: 1,
      batchSize: 64,
      seed: 3,
      learningRate: Number.MIN_VALUE,
    });
    expect(maxRelativeDifference(weightsOf(one.model), weightsOf(untrained.model))).toBeGreaterThan(1e-2);
  });

  it("the preset, with Winograd's algorithm in all three passes of its second convolution: 1, 2 and 3 workers agree to 1e-5 at the default rate, and repeat bit for bit", async () => {
    const second = buildNetwork(presetLayers('cnn', 10), { height: 28, width: 28 }, 10, 'model').layers[2];
    expect(winogradPlan(second.spec as ConvSpec, second.input)).toMatchObject({
      forward: true,
      inputGradient: true,
      filterGradient: true,
    });
    // 960 images at a global batch of 96: 10 steps, shards of 96, 48 and 32 samples, multiples of
    // every layer's chunk. Adam's first steps turn a rounding-level difference in a gradient near
    // zero into one of the rate's size, and ten steps of this network grow 1e-8 after the first
    // to 1e-3: the workers' sums must be the same bits, not merely close.
    const preset = (workers: number) =>
      train({ data: subset(960, 200), model: 'cnn', workers, epochs: 1, batchSize: 96, seed: 1 });
    const one = await preset(1);
    for (const workers of [2, 3]) {
      const many = await preset(workers);
      expect(maxRelativeDifference(weightsOf(one.model), weightsOf(many.model))).toBeLessThan(1e-5);
      expect(many.history[0].loss).toBeCloseTo(one.history[0].loss, 5);
    }
    const again = await preset(1);
    expect(maxRelativeDifference(weightsOf(one.model), weightsOf(again.model))).toBe(0);
  });

  it('repeats itself bit for bit with the same seed and worker count', async () => {
    const [a, b] = [await run(2), await run(2)];
    expect(maxRelativeDifference(weightsOf(a.model), weightsOf(b.model))).toBe(0);
    expect(a.history.map(({ seconds: _, ...rest }) => rest)).toEqual(b.history.map(({ seconds: _, ...rest }) => rest));
  });
});

describe('a CNN through checkpoints and failures', () => {
  const settings = () => ({ data: subset(1280, 500), model: SMALL_CNN, workers: 2, epochs: 2, batchSize: 64, seed: 4 });

  it("resumes mid-epoch from a checkpoint, and recovers from a worker that throws, with the clean run's weights, bit for bit", async () => {
    const options = settings();
    const clean = weightsOf((await train(options)).model);
    const dir = tempDir();
    // Asked to stop before it starts, the run stops after its first step, and checkpoints there.
    const stopped = await train({ ...options, checkpointDir: dir, interrupt: AbortSignal.abort() }).catch(
      (e: unknown) => e,
    );
    expect(stopped).toBeInstanceOf(InterruptedError);
    const checkpoint = await readCheckpoint(dir);
    expect([checkpoint.epochsDone, checkpoint.stepsDone]).toEqual([0, 1]);
    expect(checkpoint.config.model).toBe(
      'conv:8:3:same,pool,conv:8:3:valid,pool,flatten,dense:32,dropout:0.5,dense:10',
    );
    const resumed = await train({ data: options.data, resume: checkpoint });
    expect(maxRelativeDifference(weightsOf(resumed.model), clean)).toBe(0);
    const lines: string[] = [];
    const recovered = await trainWithFaults({ ...options, onLog: (line) => void lines.push(line) }, [
      { rank: 1, step: 25, kind: 'throw' },
    ]);
    expect(lines.filter((line) => line.includes('restarting the workers'))).toHaveLength(1);
    expect(maxRelativeDifference(weightsOf(recovered.model), clean)).toBe(0);
  });
});

describe('a tf.Sequential as the model', () => {
  // Seeded initialisers: the trained accuracy checked below is then the same on every run, not a
  // draw that a threshold passes most of the time.
  const sequential = (extra: tf.layers.Layer[] = []) =>
    tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [28, 28, 1],
          filters: 6,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        ...extra,
        tf.layers.flatten(),
        tf.layers.dropout({ rate: 0.25 }),
        tf.layers.dense({
          units: 10,
          activation: 'softmax',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });

  it('is trained as it is, from its own weights, and gets the trained weights back, as with model.fit', async () => {
    const model = sequential();
    const initial = weightsOf(model);
    const result = await train({ data: subset(2048, 1000), model, workers: 2, epochs: 1, batchSize: 64 });
    expect(result.model).toBe(model);
    expect(result.config.model).toBe('conv:6:3:same,pool,flatten,dropout:0.25,dense:10');
    expect(result.testAccuracy).toBeGreaterThan(0.6);
    expect(maxRelativeDifference(weightsOf(model), initial)).toBeGreaterThan(1e-2);
    // Its predictions are those of the trained parameters: the reported accuracy, on the same images.
    const test = subset(0, 1000).test;
    const predicted = tf.tidy(() =>
      (model.predict(tf.div(tf.tensor4d(test.images, [test.count, 28, 28, 1], 'float32'), 255)) as tf.Tensor)
        .argMax(1)
        .dataSync(),
    );
    expect(predicted.filter((p, i) => p === test.labels[i]).length / test.count).toBeCloseTo(result.testAccuracy, 6);
    // Starting from its weights: a step of the smallest rate leaves them where they were.
    const still = sequential();
    const before = weightsOf(still);
    await train({
      data: subset(256, 100),
      model: still,
      workers: 1,
      epochs: 1,
      batchSize: 256,
      learningRate: Number.MIN_VALUE,
    });
    expect(maxRelativeDifference(weightsOf(still), before)).toBeLessThan(1e-6);
  });

  it("trains the same in a trainer thread: the caller's model gets the weights that train() gives it here", async () => {
    const options = { data: subset(1024, 500), workers: 2, epochs: 1, batchSize: 64 } as const;
    const here = sequential();
    const there = sequential();
    there.setWeights(here.getWeights());
    await train({ ...options, model: here });
    const trainer = await createTrainerThread();
    try {
      const result = await trainer.train({ ...options, model: there });
      expect(result.model).toBe(there);
    } finally {
      await trainer.close();
    }
    expect(maxRelativeDifference(weightsOf(there), weightsOf(here))).toBe(0);
  });

  it('with a layer the trainer cannot train, fails before any worker starts, naming it and the supported ones', async () => {
    const threadsBefore = await settledOsThreads();
    const error = await train({ data: fashion, model: sequential([tf.layers.layerNormalization()]) }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UnsupportedLayerError);
    expect(error).toBeInstanceOf(OptionError);
    expect((error as UnsupportedLayerError).layerClass).toBe('LayerNormalization');
    expect((error as Error).message).toMatch(
      /^model: layer 3 \(LayerNormalization "[\w]+"\) is not a kind the trainer supports; the trainer supports Conv2D .*, MaxPooling2D .*, Flatten, Dense .*, Dropout, BatchNormalization .*, Activation .*$/,
    );
    const strided = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 2, kernelSize: 3, strides: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 10, activation: 'softmax' }),
      ],
    });
    await expect(train({ data: fashion, model: strided })).rejects.toThrow(
      /^model: layer 1 \(Conv2D "\w+"\) has a stride other than 1;/,
    );
    const wrongInput = tf.sequential({
      layers: [tf.layers.flatten({ inputShape: [32, 32, 3] }), tf.layers.dense({ units: 10, activation: 'softmax' })],
    });
    await expect(train({ data: fashion, model: wrongInput })).rejects.toThrow(
      /^model: its input is \[32, 32, 3\] per image, but the data's images are 28x28 with one channel/,
    );
    expect(await settledOsThreads(threadsBefore)).toBe(threadsBefore);
  });
});

describe('layer lists', () => {
  it('are checked against the data before any worker starts, with one line naming the layer', async () => {
    const cases: [string, RegExp][] = [
      [
        'conv2:32:3,flatten,dense:10',
        /^model: unknown layer "conv2" at position 1; expected conv, pool, flatten, dense, dropout, bn or relu$/,
      ],
      ['conv:32,flatten,dense:10', /^model: "conv:32" at position 1: needs KERNEL, e.g. conv:32:3$/],
      [
        'flatten,dense:128',
        /^model: the last layer must be dense:10 with softmax \(one unit per class\), got dense:128$/,
      ],
      ['dense:128,dense:10', /^model: dense:128 at position 1 needs a flat input, got 28x28x1: add flatten before it$/],
      [
        'conv:8:3,pool:16,pool,flatten,dense:10',
        /^model: pool at position 3 needs an input of at least 2x2, got 1x1x8$/,
      ],
      [
        'flatten,dense:10:softmax,dense:10',
        /^model: dense:10:softmax at position 2: softmax is for the output layer only/,
      ],
    ];
    for (const [layers, message] of cases) {
      await expect(train({ data: fashion, model: layers })).rejects.toThrow(message);
    }
  });
});

describe('npm run train -- --model cnn, end to end on a subset of the real data', () => {
  it('trains, saves a Conv2D model that tf.loadLayersModel loads with the reported accuracy, and draws its pictures', async () => {
    // The first 3,000 training and 1,000 test images, as IDX files: the command line reads them as
    // it reads the whole set.
    const data = join(tempDir(), 'data');
    mkdirSync(data);
    const files = { train: { count: 3000, split: fashion.train }, t10k: { count: 1000, split: fashion.test } };
    for (const [prefix, { count, split }] of Object.entries(files)) {
      writeFileSync(
        join(data, `${prefix}-images-idx3-ubyte.gz`),
        gzip(idxBytes([count, 28, 28], split.images.subarray(0, count * 784) as Uint8Array)),
      );
      writeFileSync(
        join(data, `${prefix}-labels-idx1-ubyte.gz`),
        gzip(idxBytes([count], split.labels.subarray(0, count))),
      );
    }
    const out = join(tempDir(), 'run');
    const { code, stdout, stderr } = await runNode(TRAIN_CLI, [
      '--model',
      'cnn',
      '--epochs',
      '1',
      '--workers',
      '2',
      '--data',
      data,
      '--out',
      out,
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^Training on 3000 images with 2 workers: model conv:32:3:same,pool,conv:64:3:same,pool,flatten,dense:128,dropout:0\.5,dense:10,/m,
    );
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.config.model).toBe('conv:32:3:same,pool,conv:64:3:same,pool,flatten,dense:128,dropout:0.5,dense:10');
    expect(metrics.testAccuracy).toBeGreaterThan(0.7);
    const topology = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).modelTopology;
    expect(topology.config.layers.map((l: { class_name: string }) => l.class_name)).toEqual([
      'Conv2D',
      'MaxPooling2D',
      'Conv2D',
      'MaxPooling2D',
      'Flatten',
      'Dense',
      'Dropout',
      'Dense',
    ]);
    const model = await loadModel(out);
    const test = subset(0, 1000).test;
    const predicted = tf.tidy(() =>
      (
        model.predict(tf.div(tf.tensor4d(test.images, [1000, 28, 28, 1], 'float32'), 255), {
          batchSize: 500,
        }) as tf.Tensor
      )
        .argMax(1)
        .dataSync(),
    );
    expect(predicted.filter((p, i) => p === test.labels[i]).length / 1000).toBeCloseTo(metrics.testAccuracy, 6);
    expect(stdout).toMatch(/^Pictures: .*predictions\.png, .*confusion-matrix\.png, .*learning-curves\.png$/m);
  });
});
