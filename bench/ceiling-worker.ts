/**
 * A thread of the hardware-ceiling measurement: computes the trainer's own shard gradient (the
 * worker's network runner, `rows` real images), round after round. In each round the main thread
 * says how many threads compute; those with a lower index compute for `ms` milliseconds, all
 * starting together, and report their shards per second. The others sit the round out, blocked.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { parentPort, workerData } from 'node:worker_threads';
import { buildNetwork, initializeParams } from '../src/model/network.js';
import type { LayerSpec } from '../src/model/kinds.js';
import { Rng } from '../src/rng.js';
import { SharedCollective } from '../src/worker/collective.js';
import { NetworkRunner } from '../src/worker/network-step.js';
import { ACTIVE, type CeilingJob, READY, ROUND } from './ceiling-control.js';

const job = workerData as CeilingJob & { readonly layers: readonly LayerSpec[]; readonly index: number };
await tf.setBackend('wasm');
const network = buildNetwork(job.layers, { height: 28, width: 28 }, 10, 'model');
const params = new Float32Array(network.paramCount);
const state = new Float32Array(network.stateCount);
initializeParams(network, params, state, new Rng(1));
const runner = new NetworkRunner(network, job.rows);
const samples = { images: job.images, labels: job.labels };
const shard = [
  { index: 0, start: 0, end: job.rows, grad: new Float64Array(network.paramCount), lossSum: 0, correct: 0 },
];
const collective = SharedCollective.alone(1, network.collectiveLength);
collective.beginStep(job.rows);
const options = { seed: 1, step: 0, collective, state, updatesState: true };
/** One step's work for a worker with one shard: upload the parameters, compute, free them. */
const step = (t: number) => {
  options.step = t;
  runner.prepare(params, state);
  runner.gradients(samples, shard, options);
  runner.release();
};
// Past the warm-up the trainer sees in its first steps (tfjs's heap growing, V8's JIT settling).
const warm = performance.now() + job.warmupMs;
for (let i = 0; i < 20 || performance.now() < warm; i++) step(i);
const control = job.control;
Atomics.add(control, READY, 1);
Atomics.notify(control, READY);
let round = 0;
let shards = 0;
for (;;) {
  Atomics.wait(control, ROUND, round);
  round = Atomics.load(control, ROUND);
  const active = Atomics.load(control, ACTIVE);
  if (active < 0) break;
  if (job.index >= active) continue;
  // Whole shards until the time is up; the rate counts the time they took, not `ms`.
  const first = shards;
  const start = performance.now();
  let now = start;
  while (now - start < job.ms) {
    step(shards++);
    now = performance.now();
  }
  parentPort?.postMessage((shards - first) / ((now - start) / 1000));
}
