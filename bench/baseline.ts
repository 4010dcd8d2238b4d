/**
 * The baseline a user would otherwise write: tfjs `model.fit` with the tutorial's model on the
 * wasm backend, on the main thread.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Bench } from 'tinybench';
import type { Dataset } from '../src/data/dataset.js';

export interface BaselineResult {
  readonly name: string;
  readonly batchSize: number;
  readonly samplesPerSec: number;
}

export async function measureModelFit(
  data: Dataset,
  options: { batchSize: number; samples: number; iterations: number },
): Promise<BaselineResult> {
  await tf.setBackend('wasm');
  const { batchSize, samples, iterations } = options;
  const model = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [data.height, data.width] }),
      tf.layers.dense({ units: 128, activation: 'relu' }),
      tf.layers.dense({ units: data.classNames.length, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.001), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  const pixels = data.height * data.width;
  const x = tf.tidy(() =>
    tf.div(
      tf.tensor3d(data.train.images.subarray(0, samples * pixels), [samples, data.height, data.width], 'float32'),
      255,
    ),
  );
  const y = tf.tensor1d(data.train.labels.subarray(0, samples), 'float32');
  const bench = new Bench({ iterations, time: 0, warmupIterations: 1, warmupTime: 0 });
  bench.add(
    'model.fit',
    async () => {
      await model.fit(x, y, { batchSize, epochs: 1, shuffle: true, verbose: 0 });
    },
    { async: true },
  );
  await bench.run();
  const result = bench.tasks[0].result;
  if (result.state !== 'completed') throw new Error(`model.fit benchmark did not complete: ${result.state}`);
  tf.dispose([x, y]);
  model.dispose();
  return {
    name: 'tfjs model.fit (wasm, main thread)',
    batchSize,
    samplesPerSec: samples / (result.latency.mean / 1000),
  };
}
