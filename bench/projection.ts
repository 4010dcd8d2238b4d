/**
 * A small cost model of one training step, fitted to the measured runs where every worker had a
 * core, and used to project throughput on machines with more cores. It is a projection, not a
 * measurement: it assumes cores that scale like this machine's first two and a barrier cost that
 * grows with log2 of the workers.
 *
 *   step(N, B) = gradient + update + sync
 *   gradient   = a + b * B / N          per shard: a fixed cost, then a cost per sample
 *   update     = c * P / N + d * P      all-reduce + Adam on a 1/N slice, reading all N slots
 *   sync       = e * log2(N)            the two barriers (and the imbalance they absorb)
 */
export interface StepSample {
  readonly workers: number;
  readonly batchSize: number;
  readonly msPerStep: number;
  readonly gradientMs: number;
  readonly updateMs: number;
  readonly waitMs: number;
}

export interface CostModel {
  readonly a: number;
  readonly b: number;
  readonly c: number;
  readonly d: number;
  readonly e: number;
  readonly params: number;
}

/** Least squares for y = k0 * x0 + k1 * x1 (two unknowns, normal equations). */
function fit2(rows: [number, number, number][]): [number, number] {
  let s00 = 0,
    s01 = 0,
    s11 = 0,
    t0 = 0,
    t1 = 0;
  for (const [x0, x1, y] of rows) {
    s00 += x0 * x0;
    s01 += x0 * x1;
    s11 += x1 * x1;
    t0 += x0 * y;
    t1 += x1 * y;
  }
  const det = s00 * s11 - s01 * s01;
  return [(t0 * s11 - t1 * s01) / det, (s00 * t1 - s01 * t0) / det];
}

export function fitCostModel(samples: readonly StepSample[], params: number): CostModel {
  const [a, b] = fit2(samples.map((s) => [1, s.batchSize / s.workers, s.gradientMs]));
  const [c, d] = fit2(samples.map((s) => [params / s.workers, params, s.updateMs]));
  const parallel = samples.filter((s) => s.workers > 1);
  const e =
    parallel.length === 0 ? 0 : parallel.reduce((sum, s) => sum + s.waitMs / Math.log2(s.workers), 0) / parallel.length;
  return { a, b, c, d, e, params };
}

export function modelMsPerStep(model: CostModel, workers: number, batchSize: number): number {
  const { a, b, c, d, e, params } = model;
  return a + (b * batchSize) / workers + (c * params) / workers + d * params + e * Math.log2(workers);
}
