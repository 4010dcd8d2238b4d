import { describe, expect, it } from 'vitest';
import { learningRateAt } from '../dist/src/optimizer/schedule.js';

describe('learningRateAt', () => {
  it('constant: the base rate at every step', () => {
    for (const step of [0, 1, 500, 999]) expect(learningRateAt('constant', 0.003, step, 1000)).toBe(0.003);
  });

  it('cosine: from the base rate down to 0 over the run, half of it halfway', () => {
    // base * (1 + cos(pi * step / total)) / 2 with base 0.004 and 1000 steps:
    //   step 0:    cos 0 = 1               -> 0.004
    //   step 250:  cos(pi/4) = 0.7071068   -> 0.004 * 1.7071068 / 2 = 0.0034142136
    //   step 500:  cos(pi/2) = 0           -> 0.002
    //   step 750:  cos(3pi/4) = -0.7071068 -> 0.004 * 0.2928932 / 2 = 0.0005857864
    //   step 1000: cos pi = -1             -> 0
    expect(learningRateAt('cosine', 0.004, 0, 1000)).toBe(0.004);
    expect(learningRateAt('cosine', 0.004, 250, 1000)).toBeCloseTo(0.0034142136, 10);
    expect(learningRateAt('cosine', 0.004, 500, 1000)).toBeCloseTo(0.002, 15);
    expect(learningRateAt('cosine', 0.004, 750, 1000)).toBeCloseTo(0.0005857864, 10);
    expect(learningRateAt('cosine', 0.004, 1000, 1000)).toBeCloseTo(0, 15);
    // The last step a run takes (0-based 999 of 1000) still learns, a little.
    const last = learningRateAt('cosine', 0.004, 999, 1000);
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThan(1e-7);
    // And it only ever decreases.
    const rates = Array.from({ length: 1001 }, (_, step) => learningRateAt('cosine', 0.004, step, 1000));
    rates.slice(1).forEach((rate, i) => expect(rate).toBeLessThan(rates[i]));
  });
});
