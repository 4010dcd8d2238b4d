import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EpochLog } from '../dist/src/coordinator/config.js';
import { readCheckpoint } from '../dist/src/coordinator/checkpoint.js';
import { readPyTorchRun } from '../dist/src/export/run-folder.js';
import { type Dataset, loadFashionMnist, train } from '../dist/src/index.js';
import { loadModel } from '../dist/src/model/files.js';
import { importSequential } from '../dist/src/model/keras.js';
import { ROOT, runNode, tempDir } from './helpers.js';
import { freePort, NO_TORCH, python, realSubset, runPython } from './pytorch-helpers.js';

// The same continuation both ways: from a checkpoint taken mid-epoch, 20 steps of the exported
// train_ddp.py under DistributedDataParallel (2 ranks on loopback; 2 "machines" of one rank each)
// give the parameters of 20 steps of our trainer with 2 workers, and a run handed to PyTorch and
// back continues here as it would have. The runs augment their training images (flips and shifts),
// which train_ddp.py draws from the same hash.

/**
 * Every layer kind, dropout on images (NHWC masks on NCHW tensors) and on vectors included, and
 * batch normalisation of images and of vectors, its statistics the global batch's both ways. Each
 * normalises relu'd values: a bias just before one would have no gradient but rounding, which the
 * two frameworks round differently and Adam makes steps of.
 */
const LAYERS =
  'conv:4:3:same,dropout:0.25,pool,bn:0.9,conv:6:3:linear:valid,pool,flatten,dense:16,bn:0.9:0.01,relu,dropout:0.5,dense:10';
/** 200 images at a global batch of 32: 7 steps an epoch, the last of 8 images (4 per rank). */
const TRAIN_IMAGES = 200;
/** The run: 3 epochs; stopped after its first step, 20 remain. */
const EPOCHS = 3;
const TOLERANCE = 1e-4;
const AUGMENT = { flip: true, shift: 2 };

let data: string;
let dataset: Dataset;
let start: Float32Array;
/** Our trainer's 20 steps from the checkpoint, with 2 workers. */
let reference: { params: Float32Array; history: readonly EpochLog[] };
/** The exported folder of the checkpoint, never trained: each test trains a copy. */
let exported: string;

const paramsOf = (model: Parameters<typeof importSequential>[0]) => importSequential(model, dataset, 10).params;

beforeAll(async () => {
  data = realSubset(TRAIN_IMAGES, 1000);
  dataset = await loadFashionMnist({ dir: data, env: {} });
  const stopped = tempDir('ddp-stopped-');
  // Asked to stop before it starts, the run stops after its first step: a checkpoint mid-epoch,
  // with Adam's moments set and the epoch's order drawn.
  const run = { data: dataset, model: LAYERS, epochs: EPOCHS, batchSize: 32, workers: 2, seed: 7, augment: AUGMENT };
  await train({ ...run, checkpointDir: stopped, interrupt: AbortSignal.abort() }).catch(() => undefined);
  const checkpoint = await readCheckpoint(stopped);
  expect([checkpoint.epochsDone, checkpoint.stepsDone]).toEqual([0, 1]);
  start = checkpoint.params;
  const result = await train({ data: dataset, resume: checkpoint, workers: 2 });
  reference = { params: paramsOf(result.model as Parameters<typeof importSequential>[0]), history: result.history };
  exported = join(tempDir('ddp-export-'), 'pt');
  const exporting = await runNode(join(ROOT, 'dist', 'scripts', 'export.js'), ['--model', stopped, '--out', exported]);
  expect(exporting.code).toBe(0);
}, 300_000);

/** A copy of the exported folder, as on another machine. */
function copy(): string {
  const dir = join(tempDir('ddp-copy-'), 'pt');
  cpSync(exported, dir, { recursive: true });
  return dir;
}

/** The largest difference between two parameter vectors, relative to the largest parameter. */
function relativeDifference(a: Float32Array, b: Float32Array): number {
  let difference = 0;
  let largest = 0;
  for (let i = 0; i < a.length; i++) {
    difference = Math.max(difference, Math.abs(a[i] - b[i]));
    largest = Math.max(largest, Math.abs(b[i]));
  }
  return difference / largest;
}

/** The checks of a continuation: the parameters agree, and training moved them far more than that. */
function expectOurs(params: Float32Array): void {
  expect(relativeDifference(params, reference.params)).toBeLessThan(TOLERANCE);
  expect(relativeDifference(start, reference.params)).toBeGreaterThan(100 * TOLERANCE);
}

/** The variables a rendezvous on loopback needs: gloo picks its interface from the hostname otherwise. */
const LOOPBACK = { GLOO_SOCKET_IFNAME: 'lo' };

describe.skipIf(python === undefined)(`train_ddp.py against our trainer${python ? '' : ` (${NO_TORCH})`}`, () => {
  it('20 steps with 2 ranks on loopback (launch.py) give the parameters of our 2 workers to 1e-4, and their history', async () => {
    const dir = copy();
    const port = await freePort();
    const result = await runPython(
      ['launch.py', '--nproc-per-node', '2', '--master-port', String(port), 'train_ddp.py', '--data', data],
      { cwd: dir, env: LOOPBACK },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^Continuing after epoch 0, step 1 to epoch 3 of 3: 200 images, 2 ranks \(gloo on cpu.*, seed 7, augment flip,shift:2$/m,
    );
    expect(result.stdout.match(/^7\/7 - .* - test_accuracy: \d\.\d{4}$/gm)).toHaveLength(3);
    const run = await readPyTorchRun(dir);
    expect(run.checkpoint).toMatchObject({ epochsDone: 3, stepsDone: 0, adam: { steps: 21 } });
    expectOurs(run.params);
    // Each epoch's training loss (the first includes the checkpoint's step) and test scores.
    expect(run.history).toHaveLength(EPOCHS);
    run.history.forEach((log, i) => {
      expect(log.loss).toBeCloseTo(reference.history[i].loss, 4);
      expect(log.testLoss).toBeCloseTo(reference.history[i].testLoss, 4);
      expect(log.testAccuracy).toBe(reference.history[i].testAccuracy);
    });
  });

  it("the same as 2 machines: two launches of one rank each, a rendezvous on 127.0.0.1; the second's folder left as it was", async () => {
    const [first, second] = [copy(), copy()];
    const port = String(await freePort());
    const node = (dir: string, rank: number) =>
      runPython(
        [
          'launch.py',
          '--nnodes',
          '2',
          '--node-rank',
          String(rank),
          '--nproc-per-node',
          '1',
          '--master-addr',
          '127.0.0.1',
        ].concat(['--master-port', port, 'train_ddp.py', '--data', data]),
        { cwd: dir, env: LOOPBACK },
      );
    const [zero, one] = await Promise.all([node(first, 0), node(second, 1)]);
    expect([zero.code, one.code, zero.stderr, one.stderr]).toEqual([0, 0, '', '']);
    // Rank 1 prints and writes nothing: rank 0 reports and saves.
    expect(one.stdout).toBe('');
    expect(readFileSync(join(second, 'run.json'), 'utf8')).toBe(readFileSync(join(exported, 'run.json'), 'utf8'));
    expect(zero.stdout).toMatch(/ 2 ranks \(gloo on cpu/);
    expectOurs((await readPyTorchRun(first)).params);
  });

  it('both ways: the rest of the epoch in one process of train_ddp.py, npm run import, then npm run train -- --resume for the 14 steps left', async () => {
    const dir = copy();
    // As an export of version 1 from before run.json's data block wrote it: train_ddp.py writes
    // version 2, whose data block is there, in nulls, and npm run import reads that.
    const runJson = join(dir, 'run.json');
    const { data: _, ...run } = JSON.parse(readFileSync(runJson, 'utf8'));
    writeFileSync(runJson, JSON.stringify({ ...run, version: 1 }));
    const result = await runPython(['train_ddp.py', '--epochs', '1', '--data', data], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const written = JSON.parse(readFileSync(runJson, 'utf8'));
    expect([written.version, written.data]).toEqual([2, { metadata: null, sha256: null, pictures: null }]);
    // One epoch, in the run as planned: its schedule still spans the three.
    expect(result.stdout).toMatch(/^Continuing after epoch 0, step 1 to epoch 1 of 3: 200 images, 1 rank /m);
    const back = join(tempDir('ddp-back-'), 'back');
    const imported = await runNode(join(ROOT, 'dist', 'scripts', 'import.js'), [
      '--from',
      dir,
      '--out',
      back,
      '--data',
      data,
    ]);
    expect(imported.stderr).toBe('');
    expect((await readCheckpoint(back)).adam.steps).toBe(7);
    const resumed = await runNode(join(ROOT, 'dist', 'scripts', 'train.js'), [
      '--resume',
      back,
      '--data',
      data,
      '--quiet',
    ]);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const model = await loadModel(back);
    expectOurs(paramsOf(model as Parameters<typeof importSequential>[0]));
    model.dispose();
    const metrics = JSON.parse(readFileSync(join(back, 'metrics.json'), 'utf8'));
    expect(metrics.epochs.map((log: EpochLog) => log.testAccuracy)).toEqual(
      reference.history.map((log) => log.testAccuracy),
    );
  });

  it('exported without a checkpoint, train_ddp.py --epochs 1 is a new run from its weights: that of train({ model }) given the saved model', async () => {
    const saved = join(tempDir('ddp-saved-'), 'run');
    const settings = [
      '--layers',
      LAYERS,
      '--epochs',
      '1',
      '--batch-size',
      '32',
      '--seed',
      '3',
      '--workers',
      '2',
    ].concat(['--augment', 'flip,shift:2']);
    const trained = await runNode(join(ROOT, 'dist', 'scripts', 'train.js'), [
      ...settings,
      '--data',
      data,
      '--out',
      saved,
      '--quiet',
    ]);
    expect(trained.code).toBe(0);
    const dir = join(tempDir('ddp-fresh-'), 'pt');
    expect((await runNode(join(ROOT, 'dist', 'scripts', 'export.js'), ['--model', saved, '--out', dir])).code).toBe(0);
    const result = await runPython(['train_ddp.py', '--epochs', '1', '--data', data], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^Continuing from the exported weights to epoch 1 of 1: /m);
    const model = await loadModel(saved);
    const before = paramsOf(model as Parameters<typeof importSequential>[0]);
    // Adam's moments from zero, the shuffle from the seed, the schedule over this one epoch.
    const ours = await train({
      data: dataset,
      model: model as Parameters<typeof importSequential>[0],
      epochs: 1,
      batchSize: 32,
      seed: 3,
      workers: 2,
      augment: AUGMENT,
    });
    const expected = paramsOf(ours.model as Parameters<typeof importSequential>[0]);
    model.dispose();
    expect(relativeDifference((await readPyTorchRun(dir)).params, expected)).toBeLessThan(TOLERANCE);
    expect(relativeDifference(before, expected)).toBeGreaterThan(100 * TOLERANCE);
  });
});
