import { describe, expect, it } from 'vitest';
import { ADAM_DEFAULTS, adamUpdate } from '../dist/src/optimizer/adam.js';
import { reducedGradient } from '../dist/src/optimizer/all-reduce.js';
import { buildNetwork } from '../dist/src/model/network.js';
import { parseLayers } from '../dist/src/model/spec.js';
import { paramSliceOf, shardOf } from '../dist/src/sharding.js';

/** The parameter count of dense layers of these widths on 28x28 images: weights and biases. */
function denseParams(widths: readonly number[]): number {
  const spec = ['flatten', ...widths.slice(1).map((w) => `dense:${w}`)].join(',');
  return buildNetwork(parseLayers(spec, 'test'), { height: 28, width: 28 }, widths.at(-1) as number, 'test').paramCount;
}

describe('the all-reduce', () => {
  // Three workers, four parameters; shards of 2, 1 and 1 samples (global batch 4).
  const slots = new Float64Array([1, 2, 3, 4, 10, 20, 30, 40, 100, 200, 300, 400]);
  const source = { slots, slotLength: 4, slotCount: 3, scale: 1 / 4 };

  it('sums every slot and scales by 1 / global batch', () => {
    // (2 + 20 + 200) / 4 = 55.5, (3 + 30 + 300) / 4 = 83.25
    expect([reducedGradient(source, 1), reducedGradient(source, 2)]).toEqual([55.5, 83.25]);
  });

  it('feeds Adam the reduced gradient, only on the slice it is given', () => {
    const state = { params: new Float32Array(4), m: new Float32Array(4), v: new Float32Array(4) };
    adamUpdate(state, source, { lo: 1, hi: 3 }, { t: 1, learningRate: ADAM_DEFAULTS.learningRate }, ADAM_DEFAULTS);
    // m = 0.1 g for the reduced g; parameters outside [1, 3) keep m = 0 and p = 0.
    expect([...state.m]).toEqual([0, Math.fround(5.55), Math.fround(8.325), 0]);
    expect(state.params[0]).toBe(0);
    expect(state.params[3]).toBe(0);
    expect(state.params[1]).toBeCloseTo(-0.001, 6);
  });
});

describe('sharding', () => {
  it('splits a batch into contiguous shards that cover it exactly, sizes within one', () => {
    for (const [count, workers] of [
      [32, 1],
      [32, 3],
      [96, 8],
      [5, 8],
      [1, 4],
    ]) {
      const shards = Array.from({ length: workers }, (_, r) => shardOf(100, count, r, workers));
      expect(shards[0].start).toBe(100);
      expect(shards[workers - 1].end).toBe(100 + count);
      for (let r = 1; r < workers; r++) expect(shards[r].start).toBe(shards[r - 1].end);
      const sizes = shards.map(({ start, end }) => end - start);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });

  it('gives every parameter to exactly one worker', () => {
    const count = denseParams([784, 128, 10]);
    expect(count).toBe(101_770);
    for (const workers of [1, 2, 3, 8, 64]) {
      const owners = new Uint8Array(count);
      for (let r = 0; r < workers; r++) {
        const { lo, hi } = paramSliceOf(count, r, workers);
        for (let i = lo; i < hi; i++) owners[i]++;
      }
      expect(owners.every((n) => n === 1)).toBe(true);
    }
  });
});
