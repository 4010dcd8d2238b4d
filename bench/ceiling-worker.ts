/**
 * A thread of the hardware-ceiling measurement: computes the trainer's own shard gradient (the
 * worker's `shardGradients`, 128 real images) as many times as it can in `ms` milliseconds,
 * starting when the main thread says go, so that all threads run at the same time.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { parentPort, workerData } from 'node:worker_threads';
import { paramLayout } from '../src/model/layout.js';
import { disposeParams, Scratch, shardGradients, uploadParams } from '../src/worker/gradients.js';

interface CeilingJob {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly rows: number;
  readonly ms: number;
  readonly go: Int32Array;
}

const job = workerData as CeilingJob;
await tf.setBackend('wasm');
const { layers, count } = paramLayout([784, 128, 10]);
const params = Float32Array.from({ length: count }, (_, i) => ((i * 7919) % 1000) / 1e4 - 0.05);
const grad = new Float32Array(count);
const scratch = new Scratch(job.rows, 784, 10);
const batch = { images: job.images, labels: job.labels, start: 0, end: job.rows };
/** One step's work for a worker with one shard: upload the parameters, compute, free them. */
const step = () => {
  const model = uploadParams(params, layers);
  shardGradients(model, batch, scratch, grad);
  disposeParams(model);
};
// Past the warm-up the trainer sees in its first few hundred steps.
for (let i = 0; i < 300; i++) step();
Atomics.add(job.go, 1, 1);
Atomics.wait(job.go, 0, 0);
let shards = 0;
const until = performance.now() + job.ms;
while (performance.now() < until) {
  step();
  shards++;
}
parentPort?.postMessage(shards);
