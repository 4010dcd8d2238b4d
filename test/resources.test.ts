import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../dist/src/coordinator/options.js';
import { Session } from '../dist/src/coordinator/session.js';
import { loadFashionMnist } from '../dist/src/index.js';
import { TIMING_STEPS, TIMING_TENSORS, TIMING_WORDS } from '../dist/src/protocol.js';
import { DEBIAN_DIR } from './helpers.js';

describe('resources', () => {
  it('workers hold as many tensors after step 1000 as after step 10', async () => {
    const data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
    const { progressIntervalMs: _, ...config } = resolveOptions({ workers: 2, batchSize: 32 });
    const session = new Session(data, config);
    try {
      session.beginEpoch();
      const tensors = () => [0, 1].map((rank) => session.shared.timings[rank * TIMING_WORDS + TIMING_TENSORS]);
      await session.runSteps(0, 10);
      const early = tensors();
      await session.runSteps(10, 1000);
      expect([0, 1].map((rank) => session.shared.timings[rank * TIMING_WORDS + TIMING_STEPS])).toEqual([1000, 1000]);
      expect(early.every((n) => n > 0)).toBe(true);
      expect(tensors()).toEqual(early);
    } finally {
      await session.close();
    }
  });
});
