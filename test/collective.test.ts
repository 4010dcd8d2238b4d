/**
 * The collective that layers call from their passes (worker/collective.ts), on real threads: each
 * thread is a computing worker that writes the slots of its run of shards, as runSteps assigns
 * them, and sums. Every thread must get the float64 sum of the step's non-empty shards in shard
 * order, bit for bit, whichever thread wrote which slot: with one shard per thread, with more shards
 * than threads (more workers than cores), with empty shards, and with a thread whose shards are all
 * empty. A stop while threads wait at a sum ends them instead of leaving them hanging.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { CONTROL_WORDS, createCollectiveMemory } from '../dist/src/protocol.js';
import { shardOf } from '../dist/src/sharding.js';
import { StoppedError } from '../dist/src/stop.js';
import { SharedCollective } from '../dist/src/worker/collective.js';
import { ROOT } from './helpers.js';

const module = (path: string) => pathToFileURL(join(ROOT, 'dist', 'src', path)).href;

/**
 * A computing worker: for each step, `calls` sums of `length` values; before each, it copies its
 * non-empty shards' values from `inputs` into their slots. With `stopAt`, that party stops the run
 * at that sum instead of taking part. It answers with every sum it got, or the error it stopped on.
 */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { SharedCollective } = await import(workerData.modules.collective);
  const { shardOf } = await import(workerData.modules.sharding);
  const { requestStop } = await import(workerData.modules.stop);
  const { memory, control, parties, party, steps, length, inputs, stopAt } = workerData;
  const collective = new SharedCollective(memory, control, parties);
  const mine = shardOf(0, memory.shards, party, parties);
  const sums = [];
  let at = 0;
  try {
    for (const [s, { samples, calls }] of steps.entries()) {
      collective.beginStep(samples);
      for (let call = 0; call < calls; call++, at += memory.shards * length) {
        if (stopAt !== undefined && stopAt.party === party && stopAt.sum === sums.length) {
          requestStop(control);
          parentPort.postMessage({ stopped: true });
          return;
        }
        for (let k = mine.start; k < mine.end; k++) {
          const { start, end } = shardOf(0, samples, k, memory.shards);
          if (end > start) collective.slot(k).set(inputs.subarray(at + k * length, at + (k + 1) * length));
        }
        sums.push(Array.from(collective.sum(length).subarray(0, length)));
      }
    }
    parentPort.postMessage({ sums });
  } catch (error) {
    parentPort.postMessage({ error: error.message });
  }
})();
`;

interface Step {
  readonly samples: number;
  readonly calls: number;
}

/** Values of many magnitudes and both signs, so that a sum in another order gives other bits. */
function inputsFor(steps: readonly Step[], shards: number, length: number): Float64Array {
  const count = steps.reduce((sum, step) => sum + step.calls, 0) * shards * length;
  const inputs = new Float64Array(new SharedArrayBuffer(count * 8));
  let state = 12345;
  const next = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < count; i++) inputs[i] = (next() - 0.5) * 10 ** Math.floor(next() * 24 - 8);
  return inputs;
}

/** The sums each thread should get: the non-empty shards' values added in `order` (shard order when absent). */
function expectedSums(steps: readonly Step[], shards: number, length: number, inputs: Float64Array, order?: number[]) {
  const sums: number[][] = [];
  let at = 0;
  for (const { samples, calls } of steps) {
    const summed = (order ?? Array.from({ length: shards }, (_, k) => k)).filter((k) => {
      const { start, end } = shardOf(0, samples, k, shards);
      return end > start;
    });
    for (let call = 0; call < calls; call++, at += shards * length) {
      sums.push(
        Array.from({ length }, (_, i) =>
          summed.slice(1).reduce((sum, k) => sum + inputs[at + k * length + i], inputs[at + summed[0] * length + i]),
        ),
      );
    }
  }
  return sums;
}

type Answer = { sums: number[][] } | { error: string } | { stopped: true };

/** Runs `parties` threads of THREAD on one collective, and collects their answers in party order. */
async function runParties(
  parties: number,
  shards: number,
  steps: readonly Step[],
  length: number,
  inputs: Float64Array,
  stopAt?: { party: number; sum: number },
): Promise<Answer[]> {
  const memory = createCollectiveMemory(shards, length);
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  const modules = {
    collective: module('worker/collective.js'),
    sharding: module('sharding.js'),
    stop: module('stop.js'),
  };
  return Promise.all(
    Array.from({ length: parties }, (_, party) => {
      const worker = new Worker(THREAD, {
        eval: true,
        workerData: { modules, memory, control, parties, party, steps, length, inputs, stopAt },
      });
      return new Promise<Answer>((resolve, reject) => {
        worker.once('message', (answer: Answer) => {
          resolve(answer);
          void worker.terminate();
        });
        worker.once('error', reject);
      });
    }),
  );
}

describe('the collective, on real threads', () => {
  const cases: { name: string; parties: number; shards: number; steps: Step[] }[] = [
    { name: 'one shard per thread', parties: 4, shards: 4, steps: [{ samples: 128, calls: 3 }] },
    {
      name: 'more shards than threads (8 workers on 2 cores), with steps that leave shards empty, and one where a thread has no sample',
      parties: 2,
      shards: 8,
      steps: [
        { samples: 128, calls: 3 },
        { samples: 5, calls: 2 },
        { samples: 1, calls: 3 },
        { samples: 64, calls: 1 },
      ],
    },
    {
      name: 'runs of shards of unequal length (7 workers on 3 threads), an empty one',
      parties: 3,
      shards: 7,
      steps: [
        { samples: 6, calls: 4 },
        { samples: 70, calls: 2 },
      ],
    },
  ];

  it.each(cases)('gives every thread the float64 sum in shard order, bit for bit: $name', async (c) => {
    const length = 5;
    const inputs = inputsFor(c.steps, c.shards, length);
    const expected = expectedSums(c.steps, c.shards, length, inputs);
    const answers = await runParties(c.parties, c.shards, c.steps, length, inputs);
    for (const answer of answers) expect(answer).toEqual({ sums: expected });
    // The check would notice another order: adding the shards backwards gives other bits.
    const backwards = Array.from({ length: c.shards }, (_, k) => c.shards - 1 - k);
    expect(expectedSums(c.steps, c.shards, length, inputs, backwards)).not.toEqual(expected);
  });

  it('ends the threads waiting at a sum when one stops the run, instead of leaving them hanging', async () => {
    const steps = [{ samples: 12, calls: 3 }];
    const answers = await runParties(3, 6, steps, 2, inputsFor(steps, 6, 2), { party: 1, sum: 1 });
    expect(answers).toEqual([{ error: StoppedError.MESSAGE }, { stopped: true }, { error: StoppedError.MESSAGE }]);
  });

  it('refuses a sum longer than its slots', () => {
    const collective = SharedCollective.alone(2, 3);
    collective.beginStep(2);
    expect(() => collective.sum(4)).toThrow('a sum of 4 values over a collective of 3 per shard');
  });
});
