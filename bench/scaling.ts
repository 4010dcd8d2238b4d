/**
 * `npm run bench:scaling`: training throughput of the real trainer on the real data for several
 * worker counts and global batch sizes, beside what the machine allows (a plain matMul's speed on
 * one thread, and the trainer's own gradient on every core at once with no synchronisation) and
 * beside tfjs `model.fit`, all in the same run, with a projection to machines with more cores.
 * Worker counts are measured in interleaved rounds (see measureBatch); prints tables, writes JSON
 * with --json FILE.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { createSession } from '../src/coordinator/node-platform.js';
import type { Session } from '../src/coordinator/session.js';
import type { Dataset } from '../src/data/dataset.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { parseFlags } from '../src/cli/flags.js';
import { isUserError, OptionError } from '../src/errors.js';
import { buildNetwork, type Network, performedFlops, trainingFlops } from '../src/model/network.js';
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
import { CeilingMeter } from './ceiling.js';
import { PeakMeter } from './peak.js';
import { fitCostModel, modelMsPerStep, type StepSample } from './projection.js';
import { median } from './stats.js';

interface Plan {
  readonly model: Preset;
  readonly workers: number[];
  readonly batchSizes: number[];
  readonly quick: boolean;
  readonly json: string | undefined;
}

interface TrainerResult extends StepSample {
  readonly samplesPerSec: number;
  /** Over 1 worker, at the same batch: the median of the rounds' ratios. */
  readonly speedup: number;
  /** Arithmetic speed of each computing worker over its gradient phase: the operations it multiplies (see performedFlops). */
  readonly gflopsPerWorker: number;
  /** gflopsPerWorker over the peak: the median of the rounds' ratios, each against the round's own peak sample. */
  readonly ofPeak: number;
  /**
   * The same time against the step's worth in direct-convolution operations (trainingFlops): above
   * gflopsPerWorker by what Winograd's algorithm saves, and it may pass the peak.
   */
  readonly effectiveGflopsPerWorker: number;
  /** How much the process's RSS grew while this worker count's session started and warmed up. */
  readonly rssGrowthMb: number;
  /** Each round's figures, from which the medians and ratios above are taken. */
  readonly rounds: readonly RoundFigures[];
}

/** What one round measured of one worker count: per step, in ms. */
interface RoundSample {
  readonly msPerStep: number;
  readonly gradientMs: number;
  readonly updateMs: number;
  readonly waitMs: number;
}

/** A round of one worker count, with the peak sample taken after the round. */
interface RoundFigures extends RoundSample {
  readonly samplesPerSec: number;
  readonly gflopsPerWorker: number;
  readonly peakGflops: number;
}

/**
 * Per model: the batches measured by default, the samples each round trains per worker count, the
 * warm-up steps, and the ceiling's time per thread count and round.
 */
const PLANS: Record<Preset, { batchSizes: number[]; samples: number; warmupSteps: number; ceilingMs: number }> = {
  mlp: { batchSizes: [32, 128, 256], samples: 16_384, warmupSteps: 400, ceilingMs: 1000 },
  cnn: { batchSizes: [128], samples: 2048, warmupSteps: 32, ceilingMs: 2000 },
};

function parsePlan(argv: string[]): Plan {
  const { values } = parseFlags(
    argv,
    {
      model: { type: 'string' },
      workers: { type: 'string' },
      'batch-size': { type: 'string' },
      quick: { type: 'boolean' },
      json: { type: 'string' },
    },
    { help: false },
  );
  const model = (values.model ?? 'mlp') as Preset;
  if (!PRESETS.includes(model)) throw new OptionError(`--model must be ${PRESETS.join(' or ')}, got "${model}"`);
  const list = (flag: 'workers' | 'batch-size', fallback: number[]) => {
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

/** A session kept open through the rounds, so that each round measures every worker count in turn. */
class Contender {
  readonly rounds: RoundSample[] = [];
  /** How much the process's RSS grew while the session started and warmed up. */
  rssGrowthMb = 0;
  #cursor = 0;

  private constructor(
    readonly workers: number,
    readonly session: Session,
  ) {}

  static async start(data: Dataset, network: Network, workers: number, batchSize: number, warmupSteps: number) {
    const rss = process.memoryUsage.rss();
    const model = formatLayers(network.layers.map((l) => l.spec));
    const contender = new Contender(workers, createSession(data, { workers, batchSize, model }));
    contender.session.beginEpoch();
    // The first steps of a run are slower (tfjs's wasm heap and V8's JIT settling): measure after them.
    for (let done = 0; done < warmupSteps; done += 16) await contender.#run(16);
    contender.rssGrowthMb = Math.round((process.memoryUsage.rss() - rss) / 2 ** 20);
    return contender;
  }

  async #run(steps: number): Promise<void> {
    if (this.#cursor + steps > this.session.stepsPerEpoch) {
      this.session.beginEpoch();
      this.#cursor = 0;
    }
    await this.session.runSteps(this.#cursor, this.#cursor + steps);
    this.#cursor += steps;
  }

  /** Trains `steps` steps and records their time per step, whole and by phase. */
  async measure(steps: number): Promise<void> {
    const timings = this.session.shared.timings;
    const before = Float64Array.from(timings);
    const start = performance.now();
    await this.#run(steps);
    const msPerStep = (performance.now() - start) / steps;
    /** A phase's mean milliseconds per step, over the workers that computed. */
    const phase = (word: number) => {
      let sum = 0;
      let done = 0;
      for (let r = 0; r < this.workers; r++) {
        const base = r * TIMING_WORDS;
        sum += timings[base + word] - before[base + word];
        done += timings[base + TIMING_STEPS] - before[base + TIMING_STEPS];
      }
      return sum / done;
    };
    this.rounds.push({
      msPerStep,
      gradientMs: phase(TIMING_GRADIENT),
      updateMs: phase(TIMING_UPDATE),
      waitMs: phase(TIMING_WAIT_GRADIENTS) + phase(TIMING_WAIT_UPDATE),
    });
  }
}

/**
 * Every worker count at one batch size, in rounds: each round trains the same number of samples on
 * each worker count in turn (starting one further along each round), then takes a round of the
 * ceiling and a sample of the peak. The machine's speed drifts over minutes; within a round it
 * drifts little, so ratios are taken within rounds, and their median reported.
 */
async function measureBatch(
  data: Dataset,
  network: Network,
  plan: Plan,
  batchSize: number,
  meters: { peak: PeakMeter; ceiling: CeilingMeter },
): Promise<TrainerResult[]> {
  const { samples, warmupSteps } = PLANS[plan.model];
  const contenders: Contender[] = [];
  const peaks: number[] = [];
  try {
    for (const workers of plan.workers) {
      contenders.push(
        await Contender.start(data, network, workers, batchSize, plan.quick ? Math.ceil(warmupSteps / 2) : warmupSteps),
      );
    }
    const steps = Math.ceil((plan.quick ? samples / 2 : samples) / batchSize);
    const rounds = plan.quick ? 3 : 6;
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < contenders.length; i++) await contenders[(round + i) % contenders.length].measure(steps);
      await meters.ceiling.round();
      await meters.peak.sample();
      peaks.push(meters.peak.latest);
      console.log(
        `  batch ${batchSize}, round ${round + 1}/${rounds}: ` +
          contenders.map((c) => `${c.workers}w ${((batchSize / c.rounds[round].msPerStep) * 1000) | 0}`).join(', ') +
          ' samples/s',
      );
    }
  } finally {
    await Promise.all(contenders.map((c) => c.session.close()));
  }
  const flops = performedFlops(network) * batchSize;
  const worth = trainingFlops(network) * batchSize;
  const one = contenders.find((c) => c.workers === 1);
  return contenders.map((c) => {
    const computing = Math.min(c.workers, availableParallelism());
    const gflops = (r: RoundSample) => flops / computing / r.gradientMs / 1e6;
    const msPerStep = median(c.rounds.map((r) => r.msPerStep));
    const gradientMs = median(c.rounds.map((r) => r.gradientMs));
    return {
      workers: c.workers,
      batchSize,
      msPerStep,
      samplesPerSec: (batchSize / msPerStep) * 1000,
      speedup: one === undefined ? NaN : median(c.rounds.map((r, i) => one.rounds[i].msPerStep / r.msPerStep)),
      gradientMs,
      gflopsPerWorker: flops / computing / gradientMs / 1e6,
      effectiveGflopsPerWorker: worth / computing / gradientMs / 1e6,
      ofPeak: median(c.rounds.map((r, i) => gflops(r) / peaks[i])),
      updateMs: median(c.rounds.map((r) => r.updateMs)),
      waitMs: median(c.rounds.map((r) => r.waitMs)),
      rssGrowthMb: c.rssGrowthMb,
      rounds: c.rounds.map((r, i) => ({
        ...r,
        samplesPerSec: (batchSize / r.msPerStep) * 1000,
        gflopsPerWorker: gflops(r),
        peakGflops: peaks[i],
      })),
    };
  });
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
  const performed = performedFlops(network);
  console.log(
    `Model ${plan.model}: ${formatLayers(layers)}; ${network.paramCount} parameters, ` +
      `${(flops / 1e6).toFixed(2)} MFLOP per training sample` +
      (performed < flops
        ? `, of which ${(performed / 1e6).toFixed(2)} MFLOP are multiplied as computed (Winograd's products in its convolutions' passes)`
        : ''),
  );
  const over = plan.workers.filter((w) => w > cores);
  if (over.length > 0)
    console.log(
      `Note: ${over.join(', ')} workers exceed the ${cores} cores: only ${cores} of them compute at a time (one per core), taking the shards in turn; the others wait.`,
    );

  const peak = new PeakMeter();
  await peak.sample();
  const shard = Math.ceil(128 / cores);
  const ceiling = await CeilingMeter.start(data, layers, {
    threads: cores,
    rows: shard,
    ms: plan.quick ? PLANS[plan.model].ceilingMs / 2 : PLANS[plan.model].ceilingMs,
    warmupMs: 3000,
  });
  // The trainer runs first, the baselines last: tfjs's wasm heap on the main thread (model.fit's)
  // never shrinks once grown.
  const results: TrainerResult[] = [];
  try {
    for (const batchSize of plan.batchSizes) {
      results.push(...(await measureBatch(data, network, plan, batchSize, { peak, ceiling })));
    }
  } finally {
    await ceiling.close();
  }
  const ceilingResult = ceiling.result(shard);
  console.log(
    `Hardware ceiling: the trainer's gradient of a ${shard}-image shard, on ${cores} threads at once, ` +
      `runs ${ceilingResult.speedup.toFixed(2)}x the throughput of 1 thread (no barriers, no optimizer; ` +
      `the median of ${ceilingResult.rounds.length} rounds, which ranged from ${Math.min(...ceilingResult.rounds).toFixed(2)}x ` +
      `to ${Math.max(...ceilingResult.rounds).toFixed(2)}x): a shard takes ${ceilingResult.shardMs.one.toFixed(3)} ms on 1 thread ` +
      `alone, ${ceilingResult.shardMs.many.toFixed(3)} ms on each of ${cores} at once.`,
  );
  const peakResult = peak.result();
  console.log(
    `Peak: a plain ${peakResult.shape} matMul on tfjs-wasm, one thread, median of ${peakResult.samples} samples taken between ` +
      `the rounds: ${peakResult.gflops.toFixed(1)} GFLOP/s with new weights each call, as in training ` +
      `(${peakResult.cachedGflops.toFixed(1)} with the same weights, packed once).`,
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

  const rows = results.map((r) => {
    const fit = baselines.find((b) => b.batchSize === r.batchSize && b.samplesPerSec !== undefined);
    return {
      ...r,
      efficiency: r.speedup / r.workers,
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
      `${pad('workers', 7)} ${pad('samples/s', 10)} ${pad('ms/step', 8)} ${pad('speedup', 8)} ${pad('effic.', 7)} ${pad('vs fit', 7)} ${pad('+RSS MB', 7)} | ` +
        `per step, ms: ${pad('gradient', 8)} ${pad('update', 7)} ${pad('wait', 6)} ${pad('fixed', 6)} | ${pad('GFLOP/s/worker', 14)} ${pad('of peak', 7)}` +
        (performed < flops ? ` ${pad('effective', 9)}` : ''),
    );
    for (const r of rows.filter((x) => x.batchSize === batchSize)) {
      // Fixed cost per step: everything but computing the gradient (barriers, all-reduce, Adam).
      const fixed = r.msPerStep - r.gradientMs;
      const vsFit = r.vsModelFit === undefined ? '-' : `${r.vsModelFit.toFixed(1)}x`;
      console.log(
        `${pad(r.workers, 7)} ${pad(r.samplesPerSec.toFixed(0), 10)} ${pad(r.msPerStep.toFixed(3), 8)} ${pad(r.speedup.toFixed(2) + 'x', 8)} ${pad((r.efficiency * 100).toFixed(0) + '%', 7)} ` +
          `${pad(vsFit, 7)} ${pad(r.rssGrowthMb, 7)} | ${pad(r.gradientMs.toFixed(3), 21)} ${pad(r.updateMs.toFixed(3), 7)} ${pad(r.waitMs.toFixed(3), 6)} ${pad(fixed.toFixed(3), 6)} | ` +
          `${pad(r.gflopsPerWorker.toFixed(1), 14)} ${pad((r.ofPeak * 100).toFixed(0) + '%', 7)}` +
          (performed < flops ? ` ${pad(r.effectiveGflopsPerWorker.toFixed(1), 9)}` : ''),
      );
    }
    if (performed < flops) {
      console.log(
        `GFLOP/s/worker counts the ${(performed / 1e6).toFixed(2)} MFLOP per sample the workers multiply; effective, the ${(flops / 1e6).toFixed(2)} MFLOP of the direct convolutions the step replaces, over the same time: it may pass the peak.`,
      );
    }
  }

  const fitted = rows.filter((r) => r.workers <= cores);
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
    const model = {
      name: plan.model,
      layers: formatLayers(layers),
      params: network.paramCount,
      flopsPerSample: flops,
      performedFlopsPerSample: performed,
    };
    writeFileSync(
      plan.json,
      `${JSON.stringify({ machine, model, peak: peakResult, ceiling: ceilingResult, results: rows, baselines, projection }, null, 2)}\n`,
    );
    console.log(`\nWrote ${plan.json}`);
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
