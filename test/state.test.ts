/**
 * The state vector: the values layers keep up to date themselves without training them (a batch
 * normalisation's moving statistics), beside the parameters. No kind of layer has state yet, so
 * the plumbing is tested on its own: the Keras weights split between the two vectors; a session
 * whose network has state, on real workers, keeps it in shared memory where Adam never touches it,
 * and carries it through snapshots and retries, checkpoints and resume; a checkpoint of the
 * format before it gets one line.
 */
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_FILE, readCheckpoint, writeCheckpoint } from '../dist/src/coordinator/checkpoint.js';
import { nodePlatform } from '../dist/src/coordinator/node-platform.js';
import { Session } from '../dist/src/coordinator/session.js';
import { type Dataset, DataError, loadFashionMnist } from '../dist/src/index.js';
import { fromKerasWeights, toKerasWeights } from '../dist/src/model/keras.js';
import type { PlacedLayer } from '../dist/src/model/layer.js';
import { buildNetwork, type Network } from '../dist/src/model/network.js';
import { parseLayers } from '../dist/src/model/spec.js';
import { DEBIAN_DIR, tempDir } from './helpers.js';

describe("a layer's Keras weights", () => {
  // As a batch normalisation of 2 channels would declare them: gamma and beta trained, the moving
  // statistics not; placed at offset 3 of the parameters and 1 of the state.
  const layer = {
    weights: [
      { name: 'gamma', shape: [2] },
      { name: 'beta', shape: [2] },
      { name: 'moving_mean', shape: [2], state: true },
      { name: 'moving_variance', shape: [2], state: true },
    ],
    offset: 3,
    paramCount: 4,
    stateOffset: 1,
    stateCount: 4,
  } as unknown as PlacedLayer;

  it('come from its slices of the parameters and of the state, in Keras order, and go back there', async () => {
    await tf.setBackend('cpu');
    const params = Float32Array.from([0, 0, 0, 1, 2, 3, 4, 0]);
    const state = Float32Array.from([0, 5, 6, 7, 8, 0]);
    const weights = toKerasWeights(layer, params, state);
    expect(weights.map((w) => [w.shape, Array.from(w.dataSync())])).toEqual([
      [[2], [1, 2]],
      [[2], [3, 4]],
      [[2], [5, 6]],
      [[2], [7, 8]],
    ]);
    const params2 = new Float32Array(8);
    const state2 = new Float32Array(6);
    fromKerasWeights(
      layer,
      weights.map((w) => w.dataSync() as Float32Array),
      params2,
      state2,
    );
    expect([params2, state2]).toEqual([params, state]);
    tf.dispose(weights);
  });
});

describe('a session whose network has state, on real workers', () => {
  let data: Dataset;
  let network: Network;
  beforeAll(async () => {
    const fashion = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
    const count = 256;
    data = {
      ...fashion,
      train: {
        images: fashion.train.images.subarray(0, count * 784),
        labels: fashion.train.labels.subarray(0, count),
        count,
      },
    };
    // The network as a kind with 5 state values would place it: the workers never read the vector
    // for these layers, so the run itself is the stateless one.
    network = { ...buildNetwork(parseLayers('flatten,dense:8,dense:10', 'x'), data, 10, 'x'), stateCount: 5 };
  });

  const config = {
    workers: 3,
    epochs: 1,
    batchSize: 64,
    seed: 1,
    model: 'flatten,dense:8,dense:10',
    adam: { learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    schedule: 'constant',
  } as const;

  it('keeps it in shared memory, untouched by Adam, through snapshots, checkpoints and resume', async () => {
    const initial = {
      params: Float32Array.from({ length: network.paramCount }, (_, i) => Math.sin(i) / 10),
      state: Float32Array.from([1, 2, 3, 4, 5]),
    };
    const session = new Session({ platform: nodePlatform, data, config, network, initial });
    try {
      expect(session.shared.state.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(session.shared.state).toEqual(initial.state);
      session.beginEpoch();
      const snapshot = session.snapshot();
      expect(await session.runSteps(0, 2)).toBe(2);
      // Adam moved the parameters, not the state.
      expect(session.shared.optimizer.params).not.toEqual(initial.params);
      expect(session.shared.state).toEqual(initial.state);
      // A retry goes back to the snapshot, state included, on new workers.
      session.shared.state.set([9, 9, 9, 9, 9]);
      await session.restore(snapshot);
      expect(session.shared.state).toEqual(initial.state);
      expect(session.shared.optimizer.params).toEqual(initial.params);
      // A checkpoint carries it, and a resumed session starts from it.
      session.shared.state.set([6, 7, 8, 9, 10]);
      const dir = tempDir();
      writeCheckpoint(dir, { config, trainCount: data.train.count, epochsDone: 0, history: [], ...session.state() });
      const saved = await readCheckpoint(dir);
      expect(saved.state).toEqual(Float32Array.from([6, 7, 8, 9, 10]));
      const resumed = new Session({ platform: nodePlatform, data, config, network });
      try {
        expect(resumed.shared.state).toEqual(new Float32Array(5));
        resumed.resume(saved);
        expect(resumed.shared.state).toEqual(saved.state);
        expect(resumed.shared.optimizer.params).toEqual(session.shared.optimizer.params);
      } finally {
        await resumed.close();
      }
    } finally {
      await session.close();
    }
  });

  it('refuses a checkpoint of the format before it, which had no state, in one line', async () => {
    const dir = tempDir();
    const path = join(dir, CHECKPOINT_FILE);
    writeFileSync(path, Buffer.concat([Buffer.from('FMNISTCK2'), Buffer.alloc(64)]));
    const error = await readCheckpoint(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect((error as Error).message).toBe(
      `${path}: a checkpoint of an earlier version of the trainer (format 2; this version reads format 3); ` +
        'resume it with the version that wrote it, or train again',
    );
  });
});
