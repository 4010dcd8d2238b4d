import { beforeAll, describe, expect, it } from 'vitest';
import { createSession } from '../dist/src/coordinator/node-platform.js';
import { type Dataset, loadFashionMnist } from '../dist/src/index.js';
import { TIMING_STEPS, TIMING_TENSORS, TIMING_WORDS } from '../dist/src/protocol.js';
import { DEBIAN_DIR } from './helpers.js';

let data: Dataset;

beforeAll(async () => {
  data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
});

/** Each worker's live tensor count at its last step after `early` and after `late` steps. */
async function tensorCounts(model: string, early: number, late: number) {
  const session = createSession(data, { workers: 2, batchSize: 32, model });
  try {
    session.beginEpoch();
    const tensors = () => [0, 1].map((rank) => session.shared.timings[rank * TIMING_WORDS + TIMING_TENSORS]);
    await session.runSteps(0, early);
    const first = tensors();
    await session.runSteps(early, late);
    const steps = [0, 1].map((rank) => session.shared.timings[rank * TIMING_WORDS + TIMING_STEPS]);
    return { first, last: tensors(), steps };
  } finally {
    await session.close();
  }
}

describe('resources', () => {
  it('workers hold as many tensors after step 1000 as after step 10 (the MLP)', async () => {
    const { first, last, steps } = await tensorCounts('mlp', 10, 1000);
    expect(steps).toEqual([1000, 1000]);
    expect(first.every((n) => n > 0)).toBe(true);
    expect(last).toEqual(first);
  });

  it('and a CNN with every kind of layer, after step 200 as after step 10', async () => {
    const layers = 'conv:4:3:same,pool,conv:4:3,pool,flatten,dense:16,dropout:0.5,dense:10';
    const { first, last, steps } = await tensorCounts(layers, 10, 200);
    expect(steps).toEqual([200, 200]);
    expect(first.every((n) => n > 0)).toBe(true);
    expect(last).toEqual(first);
  });
});
