import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadFashionMnist, loadModel } from '../dist/src/index.js';
import { DEBIAN_DIR, runNode, tempDir, TRAIN_CLI } from './helpers.js';

/** Accuracy and mean cross-entropy of a Layers model's `predict` on the 10,000 test images. */
async function scoreOf(model: tf.LayersModel): Promise<{ accuracy: number; loss: number }> {
  const { test } = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  const probabilities = tf.tidy(() => {
    const x = tf.div(tf.tensor3d(test.images, [test.count, 28, 28], 'float32'), 255);
    // A large batch: tfjs-layers slices the input per batch, and each slice costs ~15 ms on wasm.
    return (model.predict(x, { batchSize: 1000 }) as tf.Tensor).dataSync();
  });
  let correct = 0;
  let lossSum = 0;
  for (let i = 0; i < test.count; i++) {
    const row = probabilities.subarray(i * 10, (i + 1) * 10);
    const best = row.indexOf(Math.max(...row));
    correct += best === test.labels[i] ? 1 : 0;
    lossSum -= Math.log(row[test.labels[i]]);
  }
  return { accuracy: correct / test.count, loss: lossSum / test.count };
}

describe('npm run train, end to end on the real data', () => {
  it('trains 1 epoch on 2 workers, saves metrics and a model tf.loadLayersModel loads with the same accuracy', async () => {
    const out = join(tempDir(), 'run');
    const started = performance.now();
    const { code, stdout, stderr } = await runNode(TRAIN_CLI, [
      '--workers',
      '2',
      '--epochs',
      '1',
      '--data',
      DEBIAN_DIR,
      '--out',
      out,
    ]);
    const elapsedSeconds = (performance.now() - started) / 1000;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Epoch 1\/1$/m);
    expect(stdout).toMatch(
      /^(\d+)\/\1 \[=+\] - \d+s \d+(ms|us)\/step - loss: 0\.\d{4} - accuracy: 0\.\d{4} - test_loss: 0\.\d{4} - test_accuracy: 0\.\d{4}$/m,
    );
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(stdout).toContain(`Test accuracy: ${metrics.testAccuracy.toFixed(4)}`);
    expect(metrics.testAccuracy).toBeGreaterThanOrEqual(0.83);
    expect(metrics.testLoss).toBeLessThan(0.6);
    // The run's time holds its epochs' and is held by the life of its process.
    expect(metrics.wallSeconds).toBeGreaterThan(metrics.epochs[0].seconds);
    expect(metrics.wallSeconds).toBeLessThan(elapsedSeconds);
    expect(metrics.config).toMatchObject({
      workers: 2,
      epochs: 1,
      batchSize: 128,
      seed: 1,
      model: 'flatten,dense:128,dense:10',
      schedule: 'cosine',
    });
    expect(metrics.epochs).toHaveLength(1);
    expect(Object.keys(metrics.epochs[0]).sort()).toEqual([
      'accuracy',
      'epoch',
      'loss',
      'seconds',
      'testAccuracy',
      'testLoss',
    ]);

    const model = await loadModel(out);
    expect(model.layers.map((l) => l.getClassName())).toEqual(['Flatten', 'Dense', 'Dense']);
    // Scored here, on the main thread, from the saved files: the workers' evaluation, to float rounding.
    const score = await scoreOf(model);
    expect(score.accuracy).toBeCloseTo(metrics.testAccuracy, 3);
    expect(score.loss).toBeCloseTo(metrics.testLoss, 3);

    // tfjs's own HTTP loader reads the same files: the format is tfjs's, not only ours.
    const server = createServer((request, response) => {
      response.end(readFileSync(join(out, (request.url ?? '/').slice(1))));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.json`;
      const viaHttp = await tf.loadLayersModel(url);
      expect((await scoreOf(viaHttp)).accuracy).toBeCloseTo(metrics.testAccuracy, 3);
    } finally {
      server.close();
    }
  });
});
