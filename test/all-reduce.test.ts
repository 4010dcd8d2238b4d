import { describe, expect, it } from 'vitest';
import { reduceSlice } from '../dist/src/coordinator/all-reduce.js';
import { paramLayout, paramSliceOf, shardOf } from '../dist/src/protocol.js';

describe('reduceSlice', () => {
  it('sums every slot over the slice and scales by 1 / global batch', () => {
    // Three workers, four parameters; shards of 2, 1 and 1 samples (global batch 4).
    const slots = new Float32Array([
      1, 2, 3, 4,
      10, 20, 30, 40,
      100, 200, 300, 400,
    ]);
    const out = new Float64Array(2);
    reduceSlice({ slots, slotLength: 4, slotCount: 3, lo: 1, hi: 3, scale: 1 / 4, out });
    // (2 + 20 + 200) / 4 = 55.5, (3 + 30 + 300) / 4 = 83.25
    expect([...out]).toEqual([55.5, 83.25]);
  });
});

describe('sharding', () => {
  it('splits a batch into contiguous shards that cover it exactly, sizes within one', () => {
    for (const [count, workers] of [[32, 1], [32, 3], [96, 8], [5, 8], [1, 4]]) {
      const shards = Array.from({ length: workers }, (_, r) => shardOf(100, count, r, workers));
      expect(shards[0][0]).toBe(100);
      expect(shards[workers - 1][1]).toBe(100 + count);
      for (let r = 1; r < workers; r++) expect(shards[r][0]).toBe(shards[r - 1][1]);
      const sizes = shards.map(([a, b]) => b - a);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });

  it('gives every parameter to exactly one worker', () => {
    const { count } = paramLayout([784, 128, 10]);
    expect(count).toBe(101_770);
    for (const workers of [1, 2, 3, 8, 64]) {
      const owners = new Uint8Array(count);
      for (let r = 0; r < workers; r++) {
        const [lo, hi] = paramSliceOf(count, r, workers);
        for (let i = lo; i < hi; i++) owners[i]++;
      }
      expect(owners.every((n) => n === 1)).toBe(true);
    }
  });
});
