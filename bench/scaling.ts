/**
 * `npm run bench:scaling`: training throughput of the real trainer on the real data for several
 * worker counts and global batch sizes, against tfjs `model.fit` in the same run, with a projection
 * to machines with more cores. Timing by tinybench; prints a table, writes JSON with --json FILE.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { createSession } from '../src/coordinator/trainer.js';
import { buildNetwork } from '../src/model/network.js';
import { presetLayers } from '../src/model/spec.js';
import type { Dataset } from '../src/data/dataset.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { isUserError, OptionError } from '../src/errors.js';
import {
  TIMING_GRADIENT,
  TIMING_STEPS,
  TIMING_UPDATE,
  TIMING_WAIT_GRADIENTS,
  TIMING_WAIT_UPDATE,
  TIMING_WORDS,
} from '../src/protocol.js';
import { type BaselineResult, measureModelFit } from './baseline.js';
import { measureCeiling } from './ceiling.js';
import { fitCostModel, modelMsPerStep, type StepSample } from './projection.js';

interface Plan {
  readonly workers: number[];
  readonly batchSizes: number[];
  readonly quick: boolean;
  readonly json: string | undefined;
}

interface TrainerResult extends StepSample {
  readonly samplesPerSec: number;
  readonly peakRssMb: number;
}

function parsePlan(argv: string[]): Plan {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      workers: { type: 'string' },
      'batch-size': { type: 'string' },
      quick: { type: 'boolean' },
      json: { type: 'string' },
    },
  });
  const list = (flag: string, raw: string | undefined, fallback: number[]) => {
    if (raw === undefined) return fallback;
    const values = raw.split(',').map(Number);
    if (!values.every((v) => Number.isInteger(v) && v >= 1 && v <= 64 * 1024)) {
      throw new OptionError(`--${flag} must be a comma-separated list of positive integers, got "${raw}"`);
    }
    return values;
  };
  return {
    workers: list('workers', values.workers, [1, 2, 4, 8]),
    batchSizes: list('batch-size', values['batch-size'], [32, 256]),
    quick: values.quick === true,
    json: values.json,
  };
}

async function measureTrainer(
  data: Dataset,
  workers: number,
  batchSize: number,
  quick: boolean,
): Promise<TrainerResult> {
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
  const session = createSession(data, { workers, batchSize });
  try {
    let cursor = 0;
    const run = async (steps: number) => {
      if (cursor + steps > session.stepsPerEpoch) {
        session.beginEpoch();
        cursor = 0;
      }
      await session.runSteps(cursor, cursor + steps);
      cursor += steps;
    };
    session.beginEpoch();
    // The first ~200 steps of a run are up to 30% slower (tfjs's wasm heap and JIT settling):
    // measure after them.
    const warmupSteps = quick ? 240 : 400;
    for (let done = 0; done < warmupSteps; done += 16) await run(16);
    const stepsPerIteration = Math.ceil((quick ? 8192 : 16_384) / batchSize);
    const before = Float64Array.from(session.shared.timings);
    const bench = new Bench({ iterations: quick ? 3 : 6, time: 0, warmup: false });
    // async: true, or tinybench calls the function once untimed to find out, overlapping the first sample.
    bench.add(`${workers} workers`, () => run(stepsPerIteration), { async: true });
    await bench.run();
    const result = bench.tasks[0].result;
    if (result.state !== 'completed') throw new Error(`trainer benchmark did not complete: ${result.state}`);
    const msPerStep = result.latency.mean / stepsPerIteration;
    const phase = (word: number) => {
      let sum = 0;
      let steps = 0;
      for (let r = 0; r < workers; r++) {
        const base = r * TIMING_WORDS;
        sum += session.shared.timings[base + word] - before[base + word];
        steps += session.shared.timings[base + TIMING_STEPS] - before[base + TIMING_STEPS];
      }
      return sum / steps;
    };
    return {
      workers,
      batchSize,
      msPerStep,
      samplesPerSec: (batchSize / msPerStep) * 1000,
      gradientMs: phase(TIMING_GRADIENT),
      updateMs: phase(TIMING_UPDATE),
      waitMs: phase(TIMING_WAIT_GRADIENTS) + phase(TIMING_WAIT_UPDATE),
      peakRssMb: Math.round(peakRss / 2 ** 20),
    };
  } finally {
    await session.close();
    clearInterval(sampler);
  }
}

const pad = (value: string | number, width: number) => String(value).padStart(width);

async function main(): Promise<void> {
  const plan = parsePlan(process.argv.slice(2));
  const cores = availableParallelism();
  const machine = { cores, node: process.version, cpu: cpus()[0]?.model ?? 'unknown' };
  console.log(`Machine: ${machine.cpu}, ${cores} cores, Node.js ${machine.node}${plan.quick ? ' (quick run)' : ''}`);
  const over = plan.workers.filter((w) => w > cores);
  if (over.length > 0)
    console.log(
      `Note: ${over.join(', ')} workers exceed the ${cores} cores: only ${cores} of them compute at a time (one per core), taking the shards in turn; the others wait.`,
    );
  const data = await loadFashionMnist();
  const params = buildNetwork(presetLayers('mlp', 10), data, 10, 'model').paramCount;

  const ceiling = await measureCeiling(data, presetLayers('mlp', 10), cores, 128, plan.quick ? 1500 : 4000);
  console.log(
    `Hardware ceiling: the trainer's gradient of a ${ceiling.rows}-image shard, on ${cores} threads at once, ` +
      `runs ${ceiling.speedup.toFixed(2)}x the throughput of 1 thread (no barriers, no optimizer).`,
  );

  // The trainer runs first, the baselines last: RSS is sampled per run, and tfjs's wasm heap on the
  // main thread (model.fit's) never shrinks once grown.
  const measured: TrainerResult[] = [];
  for (const batchSize of plan.batchSizes) {
    for (const workers of plan.workers) {
      const r = await measureTrainer(data, workers, batchSize, plan.quick);
      console.log(`  measured batch ${batchSize}, ${workers} workers: ${r.samplesPerSec.toFixed(0)} samples/s`);
      measured.push(r);
    }
  }
  const baselines: BaselineResult[] = [];
  for (const batchSize of plan.batchSizes) {
    baselines.push(
      await measureModelFit(data, { batchSize, samples: plan.quick ? 2048 : 8192, iterations: plan.quick ? 2 : 3 }),
    );
  }

  const results = measured.map((r) => {
    const one = measured.find((o) => o.batchSize === r.batchSize && o.workers === 1)?.samplesPerSec ?? NaN;
    const fit = baselines.find((b) => b.batchSize === r.batchSize) as BaselineResult;
    const speedup = r.samplesPerSec / one;
    return { ...r, speedup, efficiency: speedup / r.workers, vsModelFit: r.samplesPerSec / fit.samplesPerSec };
  });
  for (const batchSize of plan.batchSizes) {
    const baseline = baselines.find((b) => b.batchSize === batchSize) as BaselineResult;
    console.log(`\nGlobal batch ${batchSize}: ${baseline.name}: ${baseline.samplesPerSec.toFixed(0)} samples/s`);
    console.log(
      `${pad('workers', 7)} ${pad('samples/s', 10)} ${pad('ms/step', 8)} ${pad('speedup', 8)} ${pad('effic.', 7)} ${pad('vs fit', 7)} ${pad('RSS MB', 7)} | per step, ms: ${pad('gradient', 8)} ${pad('update', 7)} ${pad('wait', 6)} ${pad('fixed', 6)}`,
    );
    for (const r of results.filter((x) => x.batchSize === batchSize)) {
      // Fixed cost per step: everything but computing the gradient (barriers, all-reduce, Adam).
      const fixed = r.msPerStep - r.gradientMs;
      console.log(
        `${pad(r.workers, 7)} ${pad(r.samplesPerSec.toFixed(0), 10)} ${pad(r.msPerStep.toFixed(3), 8)} ${pad(r.speedup.toFixed(2) + 'x', 8)} ${pad((r.efficiency * 100).toFixed(0) + '%', 7)} ` +
          `${pad(r.vsModelFit.toFixed(1) + 'x', 7)} ${pad(r.peakRssMb, 7)} | ${pad(r.gradientMs.toFixed(3), 21)} ${pad(r.updateMs.toFixed(3), 7)} ${pad(r.waitMs.toFixed(3), 6)} ${pad(fixed.toFixed(3), 6)}`,
      );
    }
  }

  const fitted = results.filter((r) => r.workers <= cores);
  const model = fitCostModel(fitted, params);
  const projection = {
    model: 'msPerStep = a + b*B/N + c*P/N + d*P + e*log2(N), fitted to the runs with workers <= cores',
    coefficients: model,
    fit: fitted.map((r) => ({
      batchSize: r.batchSize,
      workers: r.workers,
      measuredMsPerStep: r.msPerStep,
      modelMsPerStep: modelMsPerStep(model, r.workers, r.batchSize),
    })),
    projected: plan.batchSizes.flatMap((batchSize) =>
      [4, 8, 16, 32, 64].map((cores) => ({
        cores,
        workers: cores,
        batchSize,
        samplesPerSec: (batchSize / modelMsPerStep(model, cores, batchSize)) * 1000,
      })),
    ),
  };
  console.log('\nProjection (a model fitted to the runs above, not a measurement):');
  console.log(`  ${projection.model}`);
  console.log(
    `  a=${model.a.toFixed(3)} ms, b=${(model.b * 1000).toFixed(2)} us/sample, c=${(model.c * 1e6).toFixed(2)} ns/param, d=${(model.d * 1e6).toFixed(2)} ns/param, e=${model.e.toFixed(3)} ms`,
  );
  for (const f of projection.fit)
    console.log(
      `  fit: batch ${f.batchSize}, ${f.workers} workers: measured ${f.measuredMsPerStep.toFixed(3)} ms/step, model ${f.modelMsPerStep.toFixed(3)}`,
    );
  for (const batchSize of plan.batchSizes) {
    const row = projection.projected
      .filter((p) => p.batchSize === batchSize)
      .map((p) => `${p.cores} cores ${p.samplesPerSec.toFixed(0)}`);
    console.log(`  projected samples/s at batch ${batchSize}: ${row.join(', ')}`);
  }
  if (plan.json) {
    writeFileSync(plan.json, `${JSON.stringify({ machine, ceiling, results, baselines, projection }, null, 2)}\n`);
    console.log(`\nWrote ${plan.json}`);
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
