import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadFashionMnist, loadModel } from '../dist/src/index.js';
import { DEBIAN_DIR, runNode, tempDir, TRAIN_CLI } from './helpers.js';

/** Accuracy of a Layers model's `predict` on the 10,000 test images. */
async function accuracyOf(model: tf.LayersModel): Promise<number> {
  const { test } = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  const predicted = tf.tidy(() => {
    const x = tf.div(tf.tensor3d(test.images, [test.count, 28, 28], 'float32'), 255);
    // A large batch: tfjs-layers slices the input per batch, and each slice costs ~15 ms on wasm.
    return (model.predict(x, { batchSize: 1000 }) as tf.Tensor).argMax(1).dataSync();
  });
  let correct = 0;
  predicted.forEach((p, i) => (correct += p === test.labels[i] ? 1 : 0));
  return correct / test.count;
}

describe('npm run train, end to end on the real data', () => {
  it('trains 1 epoch on 2 workers, saves metrics and a model tf.loadLayersModel loads with the same accuracy', async () => {
    const out = join(tempDir(), 'run');
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
    expect(metrics.wallSeconds).toBeGreaterThan(0);
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
    expect(metrics.epochs[0].testAccuracy).toBe(metrics.testAccuracy);

    const model = await loadModel(out);
    expect(model.layers.map((l) => l.getClassName())).toEqual(['Flatten', 'Dense', 'Dense']);
    expect(await accuracyOf(model)).toBeCloseTo(metrics.testAccuracy, 3);

    // tfjs's own HTTP loader reads the same files: the format is tfjs's, not only ours.
    const server = createServer((request, response) => {
      response.end(readFileSync(join(out, (request.url ?? '/').slice(1))));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.json`;
      const viaHttp = await tf.loadLayersModel(url);
      expect(await accuracyOf(viaHttp)).toBeCloseTo(metrics.testAccuracy, 3);
    } finally {
      server.close();
    }
  });
});
