import * as tf from '@tensorflow/tfjs';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Dataset, loadFashionMnist, loadModel } from '../dist/src/index.js';
import { DEBIAN_DIR, idxBytes, runNode, tempDir, TRAIN_CLI, type CliResult } from './helpers.js';

// npm run train's model and schedule flags, end to end: two runs on the first 3,000 training
// images (and the whole test split), alike but for --lr-schedule and --quiet.
const TRAIN_IMAGES = 3000;
const common = ['--workers', '2', '--epochs', '1', '--batch-size', '64', '--hidden', '256,128'];

let data: Dataset;
let constant: { out: string; result: CliResult; metrics: Record<string, any> };
let cosine: { out: string; result: CliResult; metrics: Record<string, any> };

async function trainRun(dataDir: string, flags: string[]) {
  const out = join(tempDir(), 'run');
  const result = await runNode(TRAIN_CLI, [...common, ...flags, '--data', dataDir, '--out', out]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return { out, result, metrics: JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) };
}

beforeAll(async () => {
  data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  const dir = tempDir();
  const { images, labels } = data.train;
  writeFileSync(
    join(dir, 'train-images-idx3-ubyte'),
    idxBytes([TRAIN_IMAGES, 28, 28], (images as Uint8Array).subarray(0, TRAIN_IMAGES * 784)),
  );
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes([TRAIN_IMAGES], labels.subarray(0, TRAIN_IMAGES)));
  for (const file of ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'])
    copyFileSync(join(DEBIAN_DIR, file), join(dir, file));
  constant = await trainRun(dir, ['--lr-schedule', 'constant', '--quiet']);
  cosine = await trainRun(dir, ['--lr-schedule', 'cosine']);
}, 120_000);

describe('npm run train with --hidden, --lr-schedule and --quiet', () => {
  it('--hidden 256,128: two hidden layers trained, exported, and loaded back with the reported accuracy', async () => {
    expect(constant.metrics.config.model).toBe('flatten,dense:256,dense:128,dense:10');
    const json = JSON.parse(readFileSync(join(constant.out, 'model.json'), 'utf8'));
    const layers = json.modelTopology.config.layers as { class_name: string; config: any }[];
    expect(layers.map((l) => [l.class_name, l.config.units, l.config.activation])).toEqual([
      ['Flatten', undefined, undefined],
      ['Dense', 256, 'relu'],
      ['Dense', 128, 'relu'],
      ['Dense', 10, 'softmax'],
    ]);
    const model = await loadModel(constant.out);
    expect(model.countParams()).toBe(784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    const { test } = data;
    const predicted = tf.tidy(() => {
      const x = tf.div(tf.tensor3d(test.images, [test.count, 28, 28], 'float32'), 255);
      return (model.predict(x, { batchSize: 1000 }) as tf.Tensor).argMax(1).dataSync();
    });
    let correct = 0;
    predicted.forEach((p, i) => (correct += p === test.labels[i] ? 1 : 0));
    // The workers' evaluation and this predict agree, to a near tie flipped by float rounding.
    expect(correct / test.count).toBeCloseTo(constant.metrics.testAccuracy, 3);
    expect(constant.metrics.testAccuracy).toBeGreaterThan(0.7);
  });

  it('--lr-schedule reaches the workers: the same seed and data give other weights with constant than with cosine', () => {
    expect(constant.metrics.config.schedule).toBe('constant');
    expect(cosine.metrics.config.schedule).toBe('cosine');
    // Same seed and worker count repeat bit for bit (equivalence.test.ts): only the rate differs.
    const weights = (out: string) => readFileSync(join(out, 'weights.bin'));
    expect(weights(constant.out).length).toBe(weights(cosine.out).length);
    expect(weights(constant.out).equals(weights(cosine.out))).toBe(false);
    expect(cosine.result.stdout).toContain(
      'model flatten,dense:256,dense:128,dense:10, global batch 64, Adam lr 0.003 (cosine), seed 1',
    );
  });

  it('--quiet prints the final test accuracy and nothing else', () => {
    expect(constant.result.stdout).toBe(`Test accuracy: ${constant.metrics.testAccuracy.toFixed(4)}\n`);
    // Without it, the same run says what it does.
    const loud = cosine.result.stdout;
    expect(loud).toMatch(/^Training on 3000 images with 2 workers/);
    expect(loud).toMatch(/^Epoch 1\/1$/m);
    expect(loud).toMatch(/^Saved the model/m);
    expect(loud.endsWith(`Test accuracy: ${cosine.metrics.testAccuracy.toFixed(4)}\n`)).toBe(true);
  });
});
