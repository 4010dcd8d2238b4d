/**
 * `npm run bench:bn`: what synchronized batch normalisation costs a step. The cnn preset, and the
 * same network with a batch normalisation and a relu after each convolution (made linear), train
 * on the real data side by side, in interleaved rounds, for each worker count and global batch:
 * the ratio of their times per step is taken within each round, and its median reported. At a
 * batch of one sample per worker the step is mostly its fixed costs, so the difference there is
 * about what the normalisations' four barriers a step (two per layer) and their passes' dispatch
 * add; at a real batch, it is that plus the passes' loops over the activations.
 */
import { createSession } from '../src/coordinator/node-platform.js';
import type { Session } from '../src/coordinator/session.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { parseFlags } from '../src/cli/flags.js';
import { isUserError, OptionError } from '../src/errors.js';
import { formatLayers, presetLayers } from '../src/model/spec.js';
import { median } from './stats.js';

const NORMALISED =
  'conv:32:3:same:linear,bn,relu,pool,conv:64:3:same:linear,bn,relu,pool,flatten,dense:128,dropout:0.5,dense:10';

function parsePlan(argv: string[]) {
  const { values } = parseFlags(
    argv,
    { workers: { type: 'string' }, 'batch-size': { type: 'string' }, rounds: { type: 'string' } },
    { help: false },
  );
  const list = (flag: 'workers' | 'batch-size' | 'rounds', fallback: number[]) => {
    const raw = values[flag] as string | undefined;
    if (raw === undefined) return fallback;
    const numbers = raw.split(',').map(Number);
    // A batch of 0 stands for one sample per worker.
    const least = flag === 'batch-size' ? 0 : 1;
    if (!numbers.every((v) => Number.isInteger(v) && v >= least && v <= 4096)) {
      throw new OptionError(`--${flag} must be a comma-separated list of integers from ${least}, got "${raw}"`);
    }
    return numbers;
  };
  return { workers: list('workers', [1, 2]), batchSizes: list('batch-size', [0, 128]), rounds: list('rounds', [5])[0] };
}

/** Trains `steps` steps of a session, from where it was, and returns the milliseconds per step. */
async function timeSteps(session: Session, cursor: { at: number }, steps: number): Promise<number> {
  if (cursor.at + steps > session.stepsPerEpoch) {
    session.beginEpoch();
    cursor.at = 0;
  }
  const start = performance.now();
  await session.runSteps(cursor.at, cursor.at + steps);
  cursor.at += steps;
  return (performance.now() - start) / steps;
}

async function main(): Promise<void> {
  const plan = parsePlan(process.argv.slice(2));
  const data = await loadFashionMnist();
  const plain = formatLayers(presetLayers('cnn', data.classNames.length));
  console.log(`Without: ${plain} (the cnn preset)\nWith:    ${NORMALISED}`);
  for (const workers of plan.workers) {
    // 0 stands for one sample per worker: a step of fixed costs.
    for (const batchSize of plan.batchSizes.map((b) => (b === 0 ? workers : b))) {
      const sessions = [plain, NORMALISED].map((model) => createSession(data, { workers, batchSize, model }));
      try {
        const cursors = sessions.map(() => ({ at: 0 }));
        for (const session of sessions) session.beginEpoch();
        // Steps of about a second each round; the first ones warm up tfjs's heap and V8's JIT.
        const steps = Math.max(8, Math.round(2048 / batchSize));
        for (const [i, session] of sessions.entries()) await timeSteps(session, cursors[i], steps);
        const times: number[][] = [[], []];
        for (let round = 0; round < plan.rounds; round++) {
          // Alternating which goes first: the machine's speed drifts.
          for (const i of round % 2 === 0 ? [0, 1] : [1, 0]) {
            times[i].push(await timeSteps(sessions[i], cursors[i], steps));
          }
        }
        const [without, withBn] = times.map(median);
        const ratio = median(times[1].map((t, r) => t / times[0][r]));
        console.log(
          `${workers} worker${workers > 1 ? 's' : ''}, batch ${batchSize}: ${without.toFixed(2)} ms a step without, ` +
            `${withBn.toFixed(2)} ms with batch normalisation: ${ratio.toFixed(3)}x, ` +
            `${(withBn - without).toFixed(2)} ms more a step (medians of ${plan.rounds} rounds of ${steps} steps)`,
        );
      } finally {
        await Promise.all(sessions.map((session) => session.close()));
      }
    }
  }
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
