import { describe, expect, it } from 'vitest';
import { ADAM_DEFAULTS, adamUpdate } from '../dist/src/optimizer/adam.js';
import { AdamKernel, createOptimizerMemory } from '../dist/src/optimizer/adam-kernel.js';

describe('AdamKernel (WebAssembly SIMD all-reduce + Adam)', () => {
  it('repeats the hand-worked Adam steps of adam.test.ts', () => {
    const memory = createOptimizerMemory(2, 1);
    memory.params.set([1, 7]);
    const kernel = new AdamKernel(memory, ADAM_DEFAULTS);
    memory.grads.set([0.5, 99]);
    kernel.update({ lo: 0, hi: 1 }, { t: 1, learningRate: 0.001, scale: 1 });
    expect(memory.params[0]).toBeCloseTo(0.9990000063, 7);
    memory.grads.set([-0.25, 99]);
    kernel.update({ lo: 0, hi: 1 }, { t: 2, learningRate: 0.001, scale: 1 });
    expect(memory.m[0]).toBeCloseTo(0.02, 8);
    expect(memory.v[0]).toBeCloseTo(0.00031225, 10);
    expect(memory.params[0]).toBeCloseTo(0.9987336708, 7);
    expect(memory.params[1]).toBe(7);
  });

  it('is bit-identical to the JavaScript reference, for any slot count and odd slice bounds', () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    for (const slotCount of [1, 2, 3, 8]) {
      const count = 1001;
      const memory = createOptimizerMemory(count, slotCount);
      const reference = { params: new Float32Array(count), m: new Float32Array(count), v: new Float32Array(count) };
      for (let i = 0; i < count; i++) {
        reference.params[i] = memory.params[i] = random();
        reference.m[i] = memory.m[i] = random() * 0.01;
        reference.v[i] = memory.v[i] = Math.abs(random()) * 1e-4;
      }
      const kernel = new AdamKernel(memory, ADAM_DEFAULTS);
      for (let step = 1; step <= 3; step++) {
        for (let i = 0; i < memory.grads.length; i++) memory.grads[i] = random() * 10 ** Math.floor(random() * 4);
        const source = { slots: memory.grads, slotLength: memory.slotLength, slotCount, scale: 1 / 96 };
        // Two slices, as two workers would update them; the first has an odd length.
        for (const [lo, hi] of [
          [0, 333],
          [333, count],
        ]) {
          kernel.update({ lo, hi }, { t: step, learningRate: 0.003, scale: 1 / 96 });
          adamUpdate(reference, source, { lo, hi }, { t: step, learningRate: 0.003 }, ADAM_DEFAULTS);
        }
      }
      expect(Array.from(memory.params)).toEqual(Array.from(reference.params));
      expect(Array.from(memory.m)).toEqual(Array.from(reference.m));
      expect(Array.from(memory.v)).toEqual(Array.from(reference.v));
    }
  });

  it('keeps every slot 16-byte aligned', () => {
    const memory = createOptimizerMemory(101_770, 3);
    expect(memory.slotLength).toBe(101_772);
    expect(memory.grads.byteOffset % 16).toBe(0);
    expect(memory.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('says, as the reference does, when a reduced gradient is NaN or infinite, in the paired and the odd lanes', () => {
    for (const [index, value] of [
      [0, NaN],
      [3, Infinity],
      [4, -Infinity],
    ] as const) {
      const memory = createOptimizerMemory(5, 2);
      const kernel = new AdamKernel(memory, ADAM_DEFAULTS);
      memory.grads.fill(0.5);
      memory.grads[memory.slotLength + index] = value;
      const reference = { params: new Float32Array(5), m: new Float32Array(5), v: new Float32Array(5) };
      const source = { slots: memory.grads, slotLength: memory.slotLength, slotCount: 2, scale: 1 };
      const step = { t: 1, learningRate: 0.001 };
      expect(kernel.update({ lo: 0, hi: 5 }, { ...step, scale: 1 })).toBe(true);
      expect(adamUpdate(reference, source, { lo: 0, hi: 5 }, step, ADAM_DEFAULTS)).toBe(true);
      // Not in the slice: not seen.
      const other = index === 4 ? { lo: 0, hi: 4 } : { lo: index + 1, hi: 5 };
      expect(kernel.update(other, { ...step, scale: 1 })).toBe(false);
      expect(adamUpdate(reference, source, other, step, ADAM_DEFAULTS)).toBe(false);
    }
  });
});
