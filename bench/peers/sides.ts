/**
 * The two sides of `npm run bench:peers`, each run as a user runs it: the project's own command
 * line (`dist/scripts/train.js`), and a PyTorch script (`torch_train.py`, beside this file's
 * source) with Debian's python3-torch. Both train the same network on the same files with the
 * same recipe and report each epoch's seconds, training plus evaluating the test images. The
 * PyTorch network is the export's model.py for the layer list (`npm run export` writes the same),
 * so that one translation of the grammar serves both, and the export's tests check it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LearningRateSchedule } from '../../src/optimizer/schedule.js';
import { OptionError } from '../../src/errors.js';
import { modelPy } from '../../src/export/pytorch.js';
import { buildNetwork } from '../../src/model/network.js';
import { formatLayers, parseLayers, presetLayers } from '../../src/model/spec.js';

/** Compiled to dist/bench/peers/; the scripts it runs are found from the repository's root. */
const ROOT = resolve(import.meta.dirname, '..', '..', '..');
export const OUR_CLI = join(ROOT, 'dist', 'scripts', 'train.js');
export const TORCH_SCRIPT = join(ROOT, 'bench', 'peers', 'torch_train.py');

/** The tutorial's network in the project's layer grammar. */
export const MLP_LAYERS = formatLayers(presetLayers('mlp', 10));
export const CNN_LAYERS = formatLayers(presetLayers('cnn', 10));

/** What both sides train: the same for each, per run. */
export interface RunSettings {
  /** The network, in the layer grammar (PyTorch gets the export's model.py for it). */
  readonly layers: string;
  readonly epochs: number;
  readonly batchSize: number;
  /** Our worker threads; PyTorch's torch.set_num_threads. */
  readonly threads: number;
  readonly learningRate: number;
  readonly schedule: LearningRateSchedule;
  readonly seed: number;
  /** The directory with the four Fashion-MNIST files, passed to both. */
  readonly data: string;
  /** `--augment`'s list for both (the same flips and shifts, from the same hash), or undefined for none. */
  readonly augment: string | undefined;
}

/** One epoch as both sides report it (the project's EpochLog). */
export interface EpochRecord {
  readonly epoch: number;
  /** Training plus evaluating the 10,000 test images. */
  readonly seconds: number;
  readonly loss: number;
  readonly accuracy: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
}

/** One run of a side: its epochs, and the SHA-256 of the data it read (see src/data/data-hash.ts). */
export interface RunRecord {
  readonly epochs: EpochRecord[];
  readonly dataSha256: string;
}

/** A child process that failed: its last line of stderr says why. */
export class RunError extends Error {
  override readonly name = 'RunError';
}

/**
 * The flags that make our command line train `layers`, checked first against Fashion-MNIST's
 * shapes: a network it cannot train is an OptionError before anything runs.
 */
export function ourModelFlags(layers: string): string[] {
  buildNetwork(parseLayers(layers, '--layers'), { height: 28, width: 28 }, 10, '--layers');
  return ['--layers', layers];
}

/**
 * Runs `use` with the path of the export's model.py for `layers` on Fashion-MNIST's images (an
 * OptionError first, for layers that do not fit them), in a temporary directory removed after.
 */
export async function withModelPy<T>(layers: string, use: (path: string) => Promise<T>): Promise<T> {
  const network = buildNetwork(parseLayers(layers, '--layers'), { height: 28, width: 28 }, 10, '--layers');
  const dir = mkdtempSync(join(tmpdir(), 'peers-model-'));
  try {
    const path = join(dir, 'model.py');
    writeFileSync(path, modelPy(network));
    return await use(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One run of `node dist/scripts/train.js`; its epochs and data hash from the metrics.json it writes. */
export async function runOurs(settings: RunSettings): Promise<RunRecord> {
  const dir = mkdtempSync(join(tmpdir(), 'peers-ours-'));
  try {
    const out = join(dir, 'run');
    const args = [
      OUR_CLI,
      ...ourModelFlags(settings.layers),
      ...['--workers', String(settings.threads), '--epochs', String(settings.epochs)],
      ...['--batch-size', String(settings.batchSize), '--lr', String(settings.learningRate)],
      ...['--lr-schedule', settings.schedule, '--seed', String(settings.seed), '--data', settings.data],
      ...(settings.augment === undefined ? [] : ['--augment', settings.augment]),
      ...['--quiet', '--out', out],
    ];
    await run(process.execPath, args, 'our trainer');
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as {
      epochs: EpochRecord[];
      config: { dataSha256?: string };
    };
    return {
      epochs: checkEpochs(metrics.epochs, settings.epochs, 'our trainer'),
      dataSha256: checkHash(metrics.config.dataSha256, 'our trainer'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the PyTorch side runs on, as `torch_train.py --describe` prints it. */
export interface TorchInfo {
  readonly python: string;
  readonly executable: string;
  readonly torch: string;
  readonly blas: { readonly name: string; readonly library: string | null };
  readonly threads: number;
  readonly openblasThreads: string | null;
  readonly layers: string;
  readonly parameters: number;
}

/**
 * A Python interpreter that imports torch: Debian's /usr/bin/python3 first (python3-torch is
 * installed for it, and a `python3` earlier on PATH may be another one without torch), then
 * `python3` on PATH. Undefined when neither has torch.
 */
export async function findTorchPython(): Promise<string | undefined> {
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = await capture(python, ['-c', 'import torch']).catch(() => undefined);
    if (probe?.code === 0) return python;
  }
  return undefined;
}

/** What `python` would run `layers` on; a failure of the script is an OptionError with its message. */
export async function describeTorch(python: string, layers: string, threads: number): Promise<TorchInfo> {
  const { code, stdout, stderr } = await withModelPy(layers, (path) =>
    capture(python, [TORCH_SCRIPT, '--describe', '--model-py', path, '--threads', String(threads)]),
  );
  if (code !== 0) throw new OptionError(lastLine(stderr).replace(/^error: /, ''));
  return JSON.parse(stdout) as TorchInfo;
}

/** One run of torch_train.py; its epochs from the JSON line it prints for each, its data hash from stderr. */
export async function runTorch(python: string, settings: RunSettings): Promise<RunRecord> {
  const args = (path: string) => [
    TORCH_SCRIPT,
    ...['--model-py', path, '--threads', String(settings.threads), '--epochs', String(settings.epochs)],
    ...['--batch-size', String(settings.batchSize), '--lr', String(settings.learningRate)],
    ...['--lr-schedule', settings.schedule, '--seed', String(settings.seed), '--data', settings.data],
    ...(settings.augment === undefined ? [] : ['--augment', settings.augment]),
  ];
  const { stdout, stderr } = await withModelPy(settings.layers, (path) =>
    run(python, args(path), 'the PyTorch script'),
  );
  const epochs = stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as EpochRecord);
  return {
    epochs: checkEpochs(epochs, settings.epochs, 'the PyTorch script'),
    dataSha256: checkHash(/^data: sha256 (\S+)$/m.exec(stderr)?.[1], 'the PyTorch script'),
  };
}

function checkEpochs(epochs: EpochRecord[], expected: number, who: string): EpochRecord[] {
  const ok =
    epochs.length === expected &&
    epochs.every((e, i) => e.epoch === i + 1 && e.seconds > 0 && Number.isFinite(e.testAccuracy));
  if (!ok) throw new RunError(`${who} reported ${epochs.length} epochs, not the ${expected} asked for`);
  return epochs;
}

function checkHash(hash: string | undefined, who: string): string {
  if (hash === undefined || !/^[0-9a-f]{64}$/.test(hash)) throw new RunError(`${who} reported no SHA-256 of its data`);
  return hash;
}

interface Captured {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Where a child process runs, and with what environment (default: this process's). */
interface SpawnOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

function capture(command: string, args: string[], options: SpawnOptions = {}): Promise<Captured> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** Runs a command; one that fails is a RunError with its last line of stderr. */
export async function run(command: string, args: string[], who: string, options: SpawnOptions = {}): Promise<Captured> {
  const result = await capture(command, args, options);
  if (result.code !== 0) throw new RunError(`${who} failed (exit code ${result.code}): ${lastLine(result.stderr)}`);
  return result;
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').pop() ?? '';
}
