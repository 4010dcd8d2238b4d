/**
 * `npm run bench:ddp`: the same continuation of a run, one epoch, on our trainer and on the
 * export's train_ddp.py under DistributedDataParallel, here. A run of ours trains its first epoch
 * and is checkpointed; then its second epoch runs, from copies of that checkpoint, on our trainer
 * with 1 and 2 workers (`npm run train -- --resume`) and on train_ddp.py with 1 rank (all the
 * threads) and 2 ranks (launch.py, gloo, a thread each), in alternating rounds, so that a slow
 * spell of a shared machine falls on every side. For each: the epoch's seconds (training and test
 * evaluation, as each side's history records them), the wall time of the command (starting Python
 * and torch, or Node and the workers, included), the test accuracy, and how far its parameters end
 * from our 2 workers'.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseFlags } from '../src/cli/flags.js';
import { readCheckpoint } from '../src/coordinator/checkpoint.js';
import { checkNumber } from '../src/coordinator/options.js';
import { DEBIAN_DIR, LOCAL_DIR, loadFashionMnist } from '../src/data/fashion-mnist.js';
import { InterruptedError, isUserError, OptionError } from '../src/errors.js';
import { exportPyTorch } from '../src/export/pytorch.js';
import { readPyTorchRun } from '../src/export/run-folder.js';
import { train } from '../src/index.js';
import { loadModel } from '../src/model/files.js';
import { importSequential } from '../src/model/keras.js';
import { CNN_LAYERS, findTorchPython, MLP_LAYERS, OUR_CLI, run, RunError } from './peers/sides.js';
import { median } from './stats.js';

const MODELS: Record<string, string> = { mlp: MLP_LAYERS, cnn: CNN_LAYERS };

const USAGE = `Usage: npm run bench:ddp -- [flags]

Trains a run's first epoch here and checkpoints it, then its second epoch from that checkpoint on
our trainer (1 and 2 workers) and on the export's train_ddp.py under DDP (1 rank, and 2 ranks on
loopback), alternating rounds; prints each side's epoch seconds, wall time and test accuracy.

Flags:
  --model NAME   mlp or cnn (default: mlp)
  --runs N       alternating rounds (default: 3)
  --cores N      the threads every side gets: our workers at most, torch's threads over the ranks (default: 2)
  --data DIR     directory with the four Fashion-MNIST files (default: where npm run train looks)
  --json FILE    also write the runs and results as JSON
  -h, --help     show this help`;

interface Side {
  readonly name: string;
  /** The command as a user runs it, for the table. */
  readonly shown: string;
  /** Runs one continuation in a fresh copy; returns what it reported. */
  readonly run: () => Promise<Outcome>;
}

interface Outcome {
  readonly epochSeconds: number;
  readonly wallSeconds: number;
  readonly testAccuracy: number;
  readonly params: Float32Array;
}

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    model: { type: 'string' },
    runs: { type: 'string' },
    cores: { type: 'string' },
    data: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const modelName = values.model ?? 'mlp';
  const layers = MODELS[modelName];
  if (layers === undefined) throw new OptionError(`--model must be one of mlp, cnn, got "${modelName}"`);
  const integer = (flag: 'runs' | 'cores', fallback: number) => {
    const text = values[flag];
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > 64) {
      throw new OptionError(`--${flag} must be an integer between 1 and 64, got "${text}"`);
    }
    return value;
  };
  const runs = integer('runs', 3);
  const cores = checkNumber('workers', integer('cores', 2), '--cores');
  const python = await findTorchPython();
  if (python === undefined) {
    throw new OptionError(
      'no python3 with torch found (tried /usr/bin/python3, then python3 on PATH): apt-get install -y python3-torch libopenblas0-pthread',
    );
  }
  const data = resolve(
    values.data ??
      process.env.FASHION_MNIST_DIR ??
      (existsSync(join(LOCAL_DIR, 'train-labels-idx1-ubyte.gz')) ? LOCAL_DIR : DEBIAN_DIR),
  );
  const dataset = await loadFashionMnist({ dir: data });
  const work = mkdtempSync(join(tmpdir(), 'bench-ddp-'));
  try {
    console.log(
      `DDP: ${layers} on Fashion-MNIST (${data}); epoch 1 on our trainer with ${cores} workers, checkpointed, then epoch 2 ` +
        `from the checkpoint on each side, ${runs} alternating round${runs > 1 ? 's' : ''}; ${cpus()[0]?.model ?? 'unknown CPU'}, ` +
        `load average ${loadAverage()}`,
    );
    const base = join(work, 'run');
    mkdirSync(base);
    const interrupt = new AbortController();
    const first = await train({
      data: dataset,
      model: layers,
      epochs: 2,
      workers: cores,
      checkpointDir: base,
      interrupt: interrupt.signal,
      onEpochEnd: (log) => void (log.epoch === 1 && interrupt.abort()),
    }).catch((error: unknown) => error);
    if (!(first instanceof InterruptedError)) throw first;
    const checkpoint = await readCheckpoint(base);
    const exported = join(work, 'pt');
    mkdirSync(exported);
    await exportPyTorch({ model: base, out: exported });
    let copies = 0;
    const copy = (from: string) => {
      const dir = join(work, `copy-${copies++}`);
      cpSync(from, dir, { recursive: true });
      return dir;
    };
    const timed = async (command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) => {
      const started = performance.now();
      await run(command, args, command, { cwd, env: { ...process.env, OPENBLAS_NUM_THREADS: '1', ...env } });
      return (performance.now() - started) / 1000;
    };
    const ours = (workers: number): Side => ({
      name: `ours, ${workers} worker${workers > 1 ? 's' : ''}`,
      shown: `npm run train -- --resume DIR --workers ${workers}`,
      run: async () => {
        const dir = copy(base);
        const wallSeconds = await timed(
          process.execPath,
          [OUR_CLI, '--resume', dir, '--workers', String(workers), '--data', data, '--quiet'],
          dir,
        );
        const log = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).epochs[1];
        const model = await loadModel(dir);
        const { params } = importSequential(model as Parameters<typeof importSequential>[0], dataset, 10);
        model.dispose();
        return { epochSeconds: log.seconds, wallSeconds, testAccuracy: log.testAccuracy, params };
      },
    });
    const ddp = (ranks: number): Side => ({
      name: `DDP, ${ranks} rank${ranks > 1 ? 's' : ''}`,
      shown:
        ranks === 1
          ? `python3 train_ddp.py (${cores} threads)`
          : `python3 launch.py --nproc-per-node ${ranks} train_ddp.py (gloo, ${Math.max(1, Math.floor(cores / ranks))} thread${cores / ranks >= 2 ? 's' : ''} each)`,
      run: async () => {
        const dir = copy(exported);
        const port = String(29_500 + Math.floor(Math.random() * 1000));
        const threads = String(Math.max(1, Math.floor(cores / ranks)));
        const script = ['train_ddp.py', '--data', data, '--threads', threads];
        const args =
          ranks === 1 ? script : ['launch.py', '--nproc-per-node', String(ranks), '--master-port', port, ...script];
        const wallSeconds = await timed(python, args, dir, { GLOO_SOCKET_IFNAME: 'lo' });
        const result = await readPyTorchRun(dir);
        const log = result.history[1];
        return { epochSeconds: log.seconds, wallSeconds, testAccuracy: log.testAccuracy, params: result.params };
      },
    });
    const sides = [ours(1), ours(cores), ddp(1), ddp(cores)];
    const outcomes: Outcome[][] = sides.map(() => []);
    for (let round = 1; round <= runs; round++) {
      for (const [i, side] of sides.entries()) {
        const outcome = await side.run();
        outcomes[i].push(outcome);
        console.log(
          `round ${round}/${runs}: ${side.name.padEnd(14)} epoch ${outcome.epochSeconds.toFixed(2)} s, wall ${outcome.wallSeconds.toFixed(2)} s, test accuracy ${outcome.testAccuracy.toFixed(4)}`,
        );
      }
    }
    console.log(
      `load average at the end: ${loadAverage()} (the machine's runnable processes: above its cores, the sides were sharing them)`,
    );
    const reference = outcomes[1][0].params;
    const results = sides.map((side, i) => ({
      side: side.name,
      command: side.shown,
      epochSeconds: median(outcomes[i].map((o) => o.epochSeconds)),
      wallSeconds: median(outcomes[i].map((o) => o.wallSeconds)),
      testAccuracy: median(outcomes[i].map((o) => o.testAccuracy)),
      parameterDifference: Math.max(...outcomes[i].map((o) => relativeDifference(o.params, reference))),
      runs: outcomes[i].map(({ params: _, ...rest }) => rest),
    }));
    console.log(
      `\nEpoch 2 from the checkpoint after epoch 1 (of ${checkpoint.config.epochs}); medians of ${runs} run${runs > 1 ? 's' : ''}; ` +
        `parameters: the largest difference from ours with ${cores} workers, over the largest parameter`,
    );
    const rows = [
      ['side', 'command', 'epoch s', 'wall s', 'test acc', 'parameters'],
      ...results.map((r) => [
        r.side,
        r.command,
        r.epochSeconds.toFixed(2),
        r.wallSeconds.toFixed(2),
        r.testAccuracy.toFixed(4),
        r.parameterDifference.toExponential(1),
      ]),
    ];
    const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
    for (const row of rows)
      console.log(row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
    if (values.json) {
      const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores, loadAverage: loadavg()[0] };
      const report = { machine, model: layers, data, runs, results };
      writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
      console.log(`\nWrote ${values.json}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The 1-minute load average: how busy the machine was while it measured. */
function loadAverage(): string {
  return loadavg()[0].toFixed(1);
}

function relativeDifference(a: Float32Array, b: Float32Array): number {
  let difference = 0;
  let largest = 0;
  for (let i = 0; i < a.length; i++) {
    difference = Math.max(difference, Math.abs(a[i] - b[i]));
    largest = Math.max(largest, Math.abs(b[i]));
  }
  return difference / largest;
}

main().catch((error: unknown) => {
  console.error(isUserError(error) || error instanceof RunError ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
