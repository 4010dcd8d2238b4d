/**
 * A thread of the hardware-ceiling measurement: computes the trainer's own shard gradient (the
 * worker's network runner, `rows` real images) as many times as it can in `ms` milliseconds,
 * starting when the main thread says go, so that all threads run at the same time.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { parentPort, workerData } from 'node:worker_threads';
import { buildNetwork, initializeParams } from '../src/model/network.js';
import type { LayerSpec } from '../src/model/spec.js';
import { Rng } from '../src/rng.js';
import { NetworkRunner } from '../src/worker/network-step.js';

interface CeilingJob {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly layers: readonly LayerSpec[];
  readonly rows: number;
  readonly ms: number;
  readonly go: Int32Array;
}

const job = workerData as CeilingJob;
await tf.setBackend('wasm');
const network = buildNetwork(job.layers, { height: 28, width: 28 }, 10, 'model');
const params = new Float32Array(network.paramCount);
initializeParams(network, params, new Rng(1));
const grad = new Float32Array(network.paramCount);
const runner = new NetworkRunner(network, job.rows);
const batch = { images: job.images, labels: job.labels, start: 0, end: job.rows };
/** One step's work for a worker with one shard: upload the parameters, compute, free them. */
const step = (t: number) => {
  runner.prepare(params);
  runner.shardGradients(batch, grad, 1, t);
  runner.release();
};
// Past the warm-up the trainer sees in its first few hundred steps.
for (let i = 0; i < 300; i++) step(i);
Atomics.add(job.go, 1, 1);
Atomics.wait(job.go, 0, 0);
let shards = 0;
const until = performance.now() + job.ms;
while (performance.now() < until) step(shards++);
parentPort?.postMessage(shards);
