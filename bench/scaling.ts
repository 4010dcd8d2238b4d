/**
 * `npm run bench:scaling`: training throughput of the real trainer on the real data for several
 * worker counts and global batch sizes, beside what the machine allows (a plain matMul's speed on
 * one thread, and the trainer's own gradient on every core at once with no synchronisation) and
 * beside tfjs `model.fit`, all in the same run, with a projection to machines with more cores.
 * Timing by tinybench; prints tables, writes JSON with --json FILE.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { createSession } from '../src/coordinator/node-platform.js';
import type { Dataset } from '../src/data/dataset.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { isUserError, OptionError } from '../src/errors.js';
import { buildNetwork, type Network, trainingFlops } from '../src/model/network.js';
import { formatLayers, PRESETS, type Preset, presetLayers } from '../src/model/spec.js';
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
import { PeakMeter } from './peak.js';
import { fitCostModel, modelMsPerStep, type StepSample } from './projection.js';

interface Plan {
  readonly model: Preset;
  readonly workers: number[];
  readonly batchSizes: number[];
  readonly quick: boolean;
  readonly json: string | undefined;
}

interface TrainerResult extends StepSample {
  readonly samplesPerSec: number;
  /** Arithmetic speed of each computing worker over its gradient phase (see trainingFlops). */
  readonly gflopsPerWorker: number;
  readonly peakRssMb: number;
}

/** Per model: the batches measured by default, and how much each timing covers. */
const PLANS: Record<Preset, { batchSizes: number[]; samples: number; warmupSteps: number }> = {
  mlp: { batchSizes: [32, 128, 256], samples: 16_384, warmupSteps: 400 },
  cnn: { batchSizes: [128], samples: 2048, warmupSteps: 32 },
};

function parsePlan(argv: string[]): Plan {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: 'string' },
        workers: { type: 'string' },
        'batch-size': { type: 'string' },
        quick: { type: 'boolean' },
        json: { type: 'string' },
      },
    }));
  } catch (error) {
    throw new OptionError((error as Error).message.split('\n')[0]);
  }
  const model = (values.model ?? 'mlp') as Preset;
  if (!PRESETS.includes(model)) throw new OptionError(`--model must be ${PRESETS.join(' or ')}, got "${model}"`);
  const list = (flag: string, fallback: number[]) => {
    const raw = values[flag] as string | undefined;
    if (raw === undefined) return fallback;
    const numbers = raw.split(',').map(Number);
    if (!numbers.every((v) => Number.isInteger(v) && v >= 1 && v <= 64 * 1024)) {
      throw new OptionError(`--${flag} must be a comma-separated list of positive integers, got "${raw}"`);
    }
    return numbers;
  };
  return {
    model,
    workers: list('workers', [1, 2, 4, 8]),
    batchSizes: list('batch-size', PLANS[model].batchSizes),
    quick: values.quick === true,
    json: values.json as string | undefined,
  };
}

async function measureTrainer(
  data: Dataset,
  network: Network,
  plan: Plan,
  workers: number,
  batchSize: number,
): Promise<TrainerResult> {
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
  const session = createSession(data, { workers, batchSize, model: formatLayers(network.layers.map((l) => l.spec)) });
  const { samples, warmupSteps } = PLANS[plan.model];
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
    // The first steps of a run are slower (tfjs's wasm heap and V8's JIT settling): measure after them.
    const warmup = plan.quick ? Math.ceil(warmupSteps / 2) : warmupSteps;
    for (let done = 0; done < warmup; done += 16) await run(16);
    const stepsPerIteration = Math.ceil((plan.quick ? samples / 2 : samples) / batchSize);
    const before = Float64Array.from(session.shared.timings);
    const bench = new Bench({ iterations: plan.quick ? 3 : 6, time: 0, warmup: false });
    // async: true, or tinybench calls the function once untimed to find out, overlapping the first sample.
    bench.add(`${workers} workers`, () => run(stepsPerIteration), { async: true });
    await bench.run();
    const result = bench.tasks[0].result;
    if (result.state !== 'completed') throw new Error(`trainer benchmark did not complete: ${result.state}`);
    const msPerStep = result.latency.mean / stepsPerIteration;
    /** A phase's mean milliseconds per step, over the workers that computed. */
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
    const gradientMs = phase(TIMING_GRADIENT);
    const computing = Math.min(workers, availableParallelism());
    return {
      workers,
      batchSize,
      msPerStep,
      samplesPerSec: (batchSize / msPerStep) * 1000,
      gradientMs,
      gflopsPerWorker: (trainingFlops(network) * batchSize) / computing / gradientMs / 1e6,
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
  const data = await loadFashionMnist();
  const layers = presetLayers(plan.model, data.classNames.length);
  const network = buildNetwork(layers, data, data.classNames.length, 'model');
  const flops = trainingFlops(network);
  console.log(
    `Model ${plan.model}: ${formatLayers(layers)}; ${network.paramCount} parameters, ` +
      `${(flops / 1e6).toFixed(2)} MFLOP per training sample`,
  );
  const over = plan.workers.filter((w) => w > cores);
  if (over.length > 0)
    console.log(
      `Note: ${over.join(', ')} workers exceed the ${cores} cores: only ${cores} of them compute at a time (one per core), taking the shards in turn; the others wait.`,
    );

  const meter = new PeakMeter();
  await meter.sample();
  const shard = Math.ceil(128 / cores);
  const ceiling = await measureCeiling(data, layers, cores, shard, plan.quick ? 1500 : 4000);
  console.log(
    `Hardware ceiling: the trainer's gradient of a ${ceiling.rows}-image shard, on ${cores} threads at once, ` +
      `runs ${ceiling.speedup.toFixed(2)}x the throughput of 1 thread (no barriers, no optimizer).`,
  );

  // The trainer runs first, the baselines last: RSS is sampled per run, and tfjs's wasm heap on the
  // main thread (model.fit's) never shrinks once grown.
  const measured: TrainerResult[] = [];
  for (const batchSize of plan.batchSizes) {
    for (const workers of plan.workers) {
      const r = await measureTrainer(data, network, plan, workers, batchSize);
      console.log(`  measured batch ${batchSize}, ${workers} workers: ${r.samplesPerSec.toFixed(0)} samples/s`);
      measured.push(r);
      await meter.sample();
    }
  }
  const peak = meter.result();
  console.log(
    `Peak: a plain ${peak.shape} matMul on tfjs-wasm, one thread, median of ${peak.samples} samples taken between ` +
      `the runs: ${peak.gflops.toFixed(1)} GFLOP/s with new weights each call, as in training ` +
      `(${peak.cachedGflops.toFixed(1)} with the same weights, packed once).`,
  );
  const baselines: BaselineResult[] = [];
  const convolutional = plan.model !== 'mlp';
  for (const batchSize of plan.batchSizes) {
    const samples = convolutional ? 2 * batchSize : plan.quick ? 2048 : 8192;
    baselines.push(
      await measureModelFit(data, { network, backend: 'wasm', batchSize, samples, iterations: plan.quick ? 2 : 3 }),
    );
    // tfjs's plain-JavaScript backend does train a CNN, slowly: measured on a small slice.
    if (convolutional) {
      baselines.push(
        await measureModelFit(data, { network, backend: 'cpu', batchSize, samples: batchSize, iterations: 1 }),
      );
    }
  }

  const results = measured.map((r) => {
    const one = measured.find((o) => o.batchSize === r.batchSize && o.workers === 1)?.samplesPerSec ?? NaN;
    const fit = baselines.find((b) => b.batchSize === r.batchSize && b.samplesPerSec !== undefined);
    const speedup = r.samplesPerSec / one;
    return {
      ...r,
      speedup,
      efficiency: speedup / r.workers,
      ofPeak: r.gflopsPerWorker / peak.gflops,
      ofCachedPeak: r.gflopsPerWorker / peak.cachedGflops,
      vsModelFit: fit?.samplesPerSec === undefined ? undefined : r.samplesPerSec / fit.samplesPerSec,
    };
  });
  for (const batchSize of plan.batchSizes) {
    console.log(`\nGlobal batch ${batchSize}:`);
    for (const b of baselines.filter((x) => x.batchSize === batchSize)) {
      const what =
        b.error === undefined
          ? `${b.samplesPerSec?.toFixed(b.samplesPerSec < 10 ? 2 : 0)} samples/s`
          : `cannot train: "${b.error}"`;
      console.log(`  ${b.name}, ${b.samples} images: ${what}`);
    }
    console.log(
      `${pad('workers', 7)} ${pad('samples/s', 10)} ${pad('ms/step', 8)} ${pad('speedup', 8)} ${pad('effic.', 7)} ${pad('vs fit', 7)} ${pad('RSS MB', 7)} | ` +
        `per step, ms: ${pad('gradient', 8)} ${pad('update', 7)} ${pad('wait', 6)} ${pad('fixed', 6)} | ${pad('GFLOP/s/worker', 14)} ${pad('of peak', 7)} ${pad('(cached)', 8)}`,
    );
    for (const r of results.filter((x) => x.batchSize === batchSize)) {
      // Fixed cost per step: everything but computing the gradient (barriers, all-reduce, Adam).
      const fixed = r.msPerStep - r.gradientMs;
      const vsFit = r.vsModelFit === undefined ? '-' : `${r.vsModelFit.toFixed(1)}x`;
      console.log(
        `${pad(r.workers, 7)} ${pad(r.samplesPerSec.toFixed(0), 10)} ${pad(r.msPerStep.toFixed(3), 8)} ${pad(r.speedup.toFixed(2) + 'x', 8)} ${pad((r.efficiency * 100).toFixed(0) + '%', 7)} ` +
          `${pad(vsFit, 7)} ${pad(r.peakRssMb, 7)} | ${pad(r.gradientMs.toFixed(3), 21)} ${pad(r.updateMs.toFixed(3), 7)} ${pad(r.waitMs.toFixed(3), 6)} ${pad(fixed.toFixed(3), 6)} | ` +
          `${pad(r.gflopsPerWorker.toFixed(1), 14)} ${pad((r.ofPeak * 100).toFixed(0) + '%', 7)} ${pad((r.ofCachedPeak * 100).toFixed(0) + '%', 8)}`,
      );
    }
  }

  const fitted = results.filter((r) => r.workers <= cores);
  const cost = fitCostModel(fitted, network.paramCount);
  const projection = {
    model: 'msPerStep = a + b*B/N + c*P/N + d*P + e*log2(N), fitted to the runs with workers <= cores',
    coefficients: cost,
    fit: fitted.map((r) => ({
      batchSize: r.batchSize,
      workers: r.workers,
      measuredMsPerStep: r.msPerStep,
      modelMsPerStep: modelMsPerStep(cost, r.workers, r.batchSize),
    })),
    projected: plan.batchSizes.flatMap((batchSize) =>
      [4, 8, 16, 32, 64].map((cores) => ({
        cores,
        workers: cores,
        batchSize,
        samplesPerSec: (batchSize / modelMsPerStep(cost, cores, batchSize)) * 1000,
      })),
    ),
  };
  console.log('\nProjection (a model fitted to the runs above, not a measurement):');
  console.log(`  ${projection.model}`);
  console.log(
    `  a=${cost.a.toFixed(3)} ms, b=${(cost.b * 1000).toFixed(2)} us/sample, c=${(cost.c * 1e6).toFixed(2)} ns/param, d=${(cost.d * 1e6).toFixed(2)} ns/param, e=${cost.e.toFixed(3)} ms`,
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
    const model = { name: plan.model, layers: formatLayers(layers), params: network.paramCount, flopsPerSample: flops };
    writeFileSync(
      plan.json,
      `${JSON.stringify({ machine, model, peak, ceiling, results, baselines, projection }, null, 2)}\n`,
    );
    console.log(`\nWrote ${plan.json}`);
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
