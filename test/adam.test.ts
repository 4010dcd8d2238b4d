import { describe, expect, it } from 'vitest';
import { ADAM_DEFAULTS, adamUpdate } from '../dist/src/optimizer/adam.js';

/** An already reduced gradient: one slot, scale 1. */
const gradient = (...values: number[]) => ({
  slots: Float64Array.from(values),
  slotLength: values.length,
  slotCount: 1,
  scale: 1,
});

/** Adam's step t at Keras's default learning rate. */
const step = (t: number) => ({ t, learningRate: ADAM_DEFAULTS.learningRate });

describe('adamUpdate', () => {
  it('matches two Adam steps worked by hand (Keras update, lr 0.001, beta1 0.9, beta2 0.999, eps 1e-7)', () => {
    const state = { params: new Float32Array([1, 7]), m: new Float32Array(2), v: new Float32Array(2) };
    // Only parameter 0 is in the slice [0, 1); parameter 7 must not move.
    // Step 1, g = 0.5:
    //   m = 0.1 * 0.5 = 0.05,  v = 0.001 * 0.25 = 0.00025
    //   alpha = 0.001 * sqrt(1 - 0.999) / (1 - 0.9) = 3.16227766e-4
    //   update = alpha * 0.05 / (sqrt(0.00025) + 1e-7) = 3.16227766e-4 * 0.05 / 0.0158114883 = 9.99993675e-4
    //   p = 1 - 9.99993675e-4 = 0.999000006
    adamUpdate(state, gradient(0.5, 99), { lo: 0, hi: 1 }, step(1), ADAM_DEFAULTS);
    expect(state.m[0]).toBeCloseTo(0.05, 8);
    expect(state.v[0]).toBeCloseTo(0.00025, 10);
    expect(state.params[0]).toBeCloseTo(0.9990000063, 7);
    // Step 2, g = -0.25:
    //   m = 0.9 * 0.05 + 0.1 * -0.25 = 0.02,  v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225
    //   alpha = 0.001 * sqrt(1 - 0.999^2) / (1 - 0.9^2) = 0.001 * 0.0447101778 / 0.19 = 2.35316725e-4
    //   update = alpha * 0.02 / (sqrt(0.00031225) + 1e-7) = 2.35316725e-4 * 0.02 / 0.017670697 = 2.66335532e-4
    //   p = 0.999000006 - 2.66335532e-4 = 0.998733671
    adamUpdate(state, gradient(-0.25, 99), { lo: 0, hi: 1 }, step(2), ADAM_DEFAULTS);
    expect(state.m[0]).toBeCloseTo(0.02, 8);
    expect(state.v[0]).toBeCloseTo(0.00031225, 10);
    expect(state.params[0]).toBeCloseTo(0.9987336708, 7);
    expect(state.params[1]).toBe(7);
  });

  it('takes a first step of lr against the gradient sign, whatever the gradient scale', () => {
    // Step 1: m = 0.1 g, sqrt(v) = sqrt(0.001) |g|, so the update is lr * sign(g) * |g| / (|g| + eps / sqrt(0.001)):
    // lr to 6 digits for |g| = 0.1 and 40, and visibly less for |g| = 1e-4, where epsilon (1e-7) weighs in:
    // 0.001 * 3.162e-6 / (3.162e-6 + 1e-7) = 9.6934e-4.
    const state = { params: new Float32Array(3), m: new Float32Array(3), v: new Float32Array(3) };
    adamUpdate(state, gradient(0.1, -40, 1e-4), { lo: 0, hi: 3 }, step(1), ADAM_DEFAULTS);
    expect(state.params[0]).toBeCloseTo(-0.001, 6);
    expect(state.params[1]).toBeCloseTo(0.001, 6);
    expect(state.params[2]).toBeCloseTo(-9.6934e-4, 7);
  });
});
