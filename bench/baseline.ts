/**
 * The baseline a user would otherwise write: tfjs `model.fit` of the same model, on the main thread,
 * on tfjs's wasm backend or its plain-JavaScript cpu backend. On wasm, a model with a convolution
 * cannot train at all (tfjs has no Conv2DBackpropFilter kernel there): the result then carries the
 * error tfjs gave.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Bench } from 'tinybench';
import type { Dataset } from '../src/data/dataset.js';
import { initializeParams, type Network } from '../src/model/network.js';
import { toLayersModel } from '../src/model/keras.js';
import { Rng } from '../src/rng.js';

export interface BaselineResult {
  readonly name: string;
  readonly batchSize: number;
  /** How many training images each timed `fit` went through. */
  readonly samples: number;
  readonly samplesPerSec?: number;
  /** Why `fit` could not run, in tfjs's words. */
  readonly error?: string;
}

export interface BaselineOptions {
  readonly network: Network;
  readonly backend: 'wasm' | 'cpu';
  readonly batchSize: number;
  readonly samples: number;
  readonly iterations: number;
}

export async function measureModelFit(data: Dataset, options: BaselineOptions): Promise<BaselineResult> {
  const { network, backend, batchSize, samples, iterations } = options;
  const name = `tfjs model.fit (${backend}, main thread)`;
  await tf.setBackend(backend);
  const params = new Float32Array(network.paramCount);
  const state = new Float32Array(network.stateCount);
  initializeParams(network, params, state, new Rng(1));
  const model = await toLayersModel(params, state, network);
  model.compile({ optimizer: tf.train.adam(0.001), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  const pixels = data.height * data.width;
  const shape = model.inputs[0].shape.slice(1) as number[];
  const x = tf.tidy(() =>
    tf.div(tf.tensor(data.train.images.subarray(0, samples * pixels), [samples, ...shape], 'float32'), 255),
  );
  const y = tf.tensor1d(data.train.labels.subarray(0, samples), 'float32');
  try {
    const bench = new Bench({ iterations, time: 0, warmupIterations: 1, warmupTime: 0 });
    bench.add('model.fit', () => model.fit(x, y, { batchSize, epochs: 1, shuffle: true, verbose: 0 }), { async: true });
    await bench.run();
    const result = bench.tasks[0].result;
    if (result.state === 'errored') return { name, batchSize, samples, error: result.error.message.split('\n')[0] };
    if (result.state !== 'completed') throw new Error(`model.fit benchmark did not complete: ${result.state}`);
    return { name, batchSize, samples, samplesPerSec: samples / (result.latency.mean / 1000) };
  } finally {
    tf.dispose([x, y]);
    model.dispose();
    await tf.setBackend('wasm');
  }
}
