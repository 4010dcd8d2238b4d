/**
 * The PyTorch export of a run on a folder of colour pictures: the folder's pictures go along as the
 * run decoded, fitted and split them (IDX files whose hash is the run's), the network in PyTorch
 * computes our logits on them, train_ddp.py continues the run on 2 ranks as our 2 workers do, and
 * the import gives back our weights, the model's metadata, and a model that predict and the
 * pictures treat as the original. Bad input is one line.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../dist/src/coordinator/checkpoint.js';
import { readPyTorchRun } from '../dist/src/export/run-folder.js';
import { type Dataset, loadFashionMnist, loadImageFolder, train } from '../dist/src/index.js';
import { loadModel } from '../dist/src/model/files.js';
import { importSequential } from '../dist/src/model/keras.js';
import {
  CLASS_FOLDERS,
  type CliResult,
  DEBIAN_DIR,
  jpegBytes,
  pngBytes,
  ROOT,
  runNode,
  tempDir,
  tinted,
  TRAIN_CLI,
} from './helpers.js';
import { freePort, NO_TORCH, python, realSubset, runPython } from './pytorch-helpers.js';

const EXPORT_CLI = join(ROOT, 'dist', 'scripts', 'export.js');
const IMPORT_CLI = join(ROOT, 'dist', 'scripts', 'import.js');
const PREDICT_CLI = join(ROOT, 'dist', 'scripts', 'predict.js');

/** 50 pictures of each class, no test/: 0.2 of each class held out, 400 to train on, 100 to test. */
const PER_CLASS = 50;
/** How the run makes images of them: each fitted into 24x24, aspect ratio kept, in colour (found). */
const FOLDER_FLAGS = ['--image-size', '24', '--resize', 'pad', '--validation-split', '0.2'];
const SEED = 5;
/** A CNN with dropout on images and on vectors (NHWC masks on NCHW tensors), on 3 channels. */
const LAYERS = 'conv:6:3:same,pool,conv:8:3,dropout:0.2,pool,flatten,dense:24,dropout:0.25,dense:10';
const TOLERANCE = 1e-4;

let pictures: string;
/** The run of npm run train on the folder: model.json, weights.bin, metrics.json. */
let runDir: string;
/** Its export. */
let exported: string;
let exportOutput: CliResult;

/**
 * Real Fashion-MNIST images in their class's tint, as pictures of several kinds: 28x28 RGB PNGs,
 * every third widened to 28x36 with black columns (so that --resize pad fits it, letterboxed), every
 * fifth a JPEG.
 */
function writeColourFolder(dir: string, data: Dataset): void {
  const seen = new Array<number>(10).fill(0);
  for (let i = 0; seen.some((n) => n < PER_CLASS); i++) {
    const label = data.train.labels[i];
    if (seen[label] >= PER_CLASS) continue;
    const k = seen[label]++;
    let rgb = tinted((data.train.images as Uint8Array).subarray(i * 784, (i + 1) * 784), label);
    let width = 28;
    if (k % 3 === 0) {
      width = 36;
      const wide = new Uint8Array(28 * width * 3);
      for (let y = 0; y < 28; y++) wide.set(rgb.subarray(y * 28 * 3, (y + 1) * 28 * 3), (y * width + 4) * 3);
      rgb = wide;
    }
    const folder = join(dir, 'train', CLASS_FOLDERS[label]);
    mkdirSync(folder, { recursive: true });
    const name = String(i).padStart(5, '0');
    if (k % 5 === 0) writeFileSync(join(folder, `${name}.jpg`), jpegBytes(rgb, width, 28));
    else writeFileSync(join(folder, `${name}.png`), pngBytes(rgb, width, 28, 3));
  }
}

/** The CLI's result for a failure: exit code 1 and one line on stderr, which is returned. */
function oneLine(result: CliResult): string {
  expect(result.code).toBe(1);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  return lines[0];
}

async function exportOf(model: string, extra: string[] = []): Promise<{ out: string; result: CliResult }> {
  const out = join(tempDir('pictures-export-'), 'pt');
  const result = await runNode(EXPORT_CLI, ['--model', model, '--format', 'pytorch', '--out', out, ...extra]);
  return { out, result };
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

/** SHA-256 of the four IDX files' payloads, train images and labels then test: the run's data hash, computed from the files. */
function filesSha256(dir: string, images: string): string {
  const hash = createHash('sha256');
  for (const [name, rank] of [
    [`train-images-${images}-ubyte`, 4],
    ['train-labels-idx1-ubyte', 1],
    [`t10k-images-${images}-ubyte`, 4],
    ['t10k-labels-idx1-ubyte', 1],
  ] as const) {
    hash.update(readFileSync(join(dir, name)).subarray(4 + 4 * rank));
  }
  return hash.digest('hex');
}

beforeAll(async () => {
  const fashion = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  pictures = join(tempDir('pictures-folder-'), 'colour');
  writeColourFolder(pictures, fashion);
  runDir = join(tempDir('pictures-run-'), 'run');
  const trained = await runNode(TRAIN_CLI, [
    ...['--data', pictures, ...FOLDER_FLAGS, '--layers', LAYERS, '--epochs', '3', '--batch-size', '32', '--lr', '0.01'],
    ...['--seed', String(SEED), '--workers', '2', '--quiet', '--out', runDir],
  ]);
  expect(trained.stderr).toBe('');
  expect(trained.code).toBe(0);
  ({ out: exported, result: exportOutput } = await exportOf(runDir));
}, 300_000);

describe('npm run export of a run on a folder of colour pictures', () => {
  it("writes the run's images as it trained on them: IDX files of [n, 24, 24, 3] whose hash is metrics.json's, and says so", () => {
    expect(exportOutput.stderr).toBe('');
    expect(exportOutput.code).toBe(0);
    const metrics = json(join(runDir, 'metrics.json'));
    expect(exportOutput.stdout).toContain(
      `Data: the pictures of ${pictures} as the run trained on them, 400 training and 100 test images of 24x24x3, sha256 ${metrics.config.dataSha256}`,
    );
    expect(readFileSync(join(exported, 'train-images-idx4-ubyte')).subarray(0, 20)).toEqual(
      Buffer.from([0, 0, 8, 4, 0, 0, 1, 144, 0, 0, 0, 24, 0, 0, 0, 24, 0, 0, 0, 3]),
    );
    expect(filesSha256(exported, 'idx4')).toBe(metrics.config.dataSha256);
    expect(json(join(exported, 'run.json')).data).toEqual({
      metadata: json(join(runDir, 'model.json')).userDefinedMetadata,
      sha256: metrics.config.dataSha256,
      pictures: { folder: pictures },
    });
    const modelPy = readFileSync(join(exported, 'model.py'), 'utf8');
    expect(modelPy).toContain('HEIGHT, WIDTH, CHANNELS, CLASSES = 24, 24, 3, 10\n');
    expect(modelPy).toContain(`CLASS_NAMES = ${JSON.stringify(CLASS_FOLDERS)}\n`);
  });

  it('bad input: one line, exit code 1, nothing in --out', async () => {
    const cases: [string, string[], RegExp][] = [];
    // The folder moved away since the run.
    const moved = `${pictures}-moved`;
    renameSync(pictures, moved);
    try {
      const { out, result } = await exportOf(runDir);
      expect(oneLine(result)).toBe(
        `error: the run read its pictures from "${pictures}" (${runDir}/metrics.json), which has no train/ folder now: pass --data with the folder where they are`,
      );
      expect(existsSync(out)).toBe(false);
      // --data says where it is now: the same export.
      const found = await exportOf(runDir, ['--data', moved]);
      expect(found.result.stderr).toBe('');
      expect(
        readFileSync(join(found.out, 't10k-images-idx4-ubyte')).equals(
          readFileSync(join(exported, 't10k-images-idx4-ubyte')),
        ),
      ).toBe(true);
    } finally {
      renameSync(moved, pictures);
    }
    // A copy of the folder with one picture changed is not the run's data.
    const changed = join(tempDir('pictures-changed-'), 'colour');
    cpSync(pictures, changed, { recursive: true });
    const file = join(changed, 'train', CLASS_FOLDERS[0], '00001.png');
    const rgb = new Uint8Array(28 * 28 * 3).fill(200);
    writeFileSync(file, pngBytes(rgb, 28, 28, 3));
    cases.push([
      'a changed picture',
      ['--data', changed],
      /^error: .*colour's pictures, made into 24x24x3 images as the run's were, are not what it was trained on \(sha256 [0-9a-f]{12}…, and .*metrics\.json has [0-9a-f]{12}…\): pass --data with the run's own folder, as it was$/,
    ]);
    cases.push([
      'pictures made another way',
      ['--data', pictures, '--image-size', '20'],
      /are not what it was trained on/,
    ]);
    cases.push([
      '--data for a run on IDX files',
      ['--data', realSubset(10, 10)],
      /has no train\/ folder: the export takes --data for a run on a folder of pictures/,
    ]);
    for (const [, args, message] of cases) {
      const { out, result } = await exportOf(runDir, args);
      expect(oneLine(result)).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe('npm run import of it, without training', () => {
  let back: string;
  let imported: CliResult;
  beforeAll(async () => {
    back = join(tempDir('pictures-back-'), 'back');
    imported = await runNode(IMPORT_CLI, ['--from', exported, '--out', back, '--workers', '2']);
  }, 120_000);

  it("gives back weights.bin bit for bit, the model's metadata, and the test scores, on the run's own test split", () => {
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    expect(readFileSync(join(back, 'weights.bin')).equals(readFileSync(join(runDir, 'weights.bin')))).toBe(true);
    const [before, after] = [json(join(runDir, 'model.json')), json(join(back, 'model.json'))];
    expect(after.userDefinedMetadata).toEqual(before.userDefinedMetadata);
    expect(after.userDefinedMetadata).toEqual({
      classNames: CLASS_FOLDERS,
      image: { height: 24, width: 24, channels: 3 },
      imageFolder: { resize: 'pad', validationSplit: { fraction: 0.2, seed: SEED } },
    });
    const [ours, theirs] = [json(join(runDir, 'metrics.json')), json(join(back, 'metrics.json'))];
    expect([theirs.testLoss, theirs.testAccuracy]).toEqual([ours.testLoss, ours.testAccuracy]);
    expect(theirs.epochs).toEqual(ours.epochs);
    for (const key of ['data', 'dataSha256', 'classNames', 'image', 'imageFolder']) {
      expect(theirs.config[key]).toEqual(ours.config[key]);
    }
  });

  it('npm run predict treats it as the original: the same pictures of the held-out images, the same answers for a picture', async () => {
    const picture = join(pictures, 'train', CLASS_FOLDERS[3]);
    const predictions = async (model: string) => {
      const out = tempDir('pictures-predict-');
      const [grid, one] = await Promise.all([
        runNode(PREDICT_CLI, ['--model', model, '--data', pictures, '--out', out]),
        runNode(PREDICT_CLI, ['--model', model, '--image', join(picture, readdirSync(picture).sort()[0])]),
      ]);
      expect(grid.stderr).toBe('');
      expect(one.stderr).toBe('');
      // What it printed, but for the output directory and how long the folder took to read.
      const table = grid.stdout.replaceAll(out, 'OUT').replace(/ in \d+\.\d+ s/, '');
      return { grid: readFileSync(join(out, 'predictions.png')), table, one: one.stdout };
    };
    // Four processes, two at a time (each mostly one thread's work): the original's, then the import's.
    const [original, again] = [await predictions(runDir), await predictions(back)];
    expect(again.grid.equals(original.grid)).toBe(true);
    expect(again.table).toBe(original.table);
    expect(again.one).toBe(original.one);
    // Named with the folder's classes, from the model's metadata.
    expect(original.one).toMatch(
      new RegExp(`^${picture}/\\d+\\.(png|jpg): (${CLASS_FOLDERS.join('|')}) \\d+\\.\\d%, `),
    );
  });
});

describe.skipIf(python === undefined)(`the run in PyTorch${python ? '' : ` (${NO_TORCH})`}`, () => {
  it("model.py's logits on the held-out split equal ours to 1e-4, with the run's accuracy", async () => {
    const file = join(tempDir(), 'logits.f32');
    const code = `
import sys, torch
sys.path.insert(0, ${JSON.stringify(exported)})
import model, train_ddp
network = model.load()
network.eval()
images, _ = train_ddp.load_split(${JSON.stringify(exported)}, train_ddp.FILES[2], train_ddp.FILES[3])
with torch.no_grad():
    logits = network(train_ddp.as_input(images))
open(${JSON.stringify(file)}, "wb").write(model.tensor_bytes(logits))
`;
    const result = await runPython(['-c', code]);
    expect(result.stderr).toBe('');
    const torch = new Float32Array(new Uint8Array(readFileSync(file)).buffer);
    // Ours: the saved model on the pictures decoded here again, up to its softmax.
    const { test } = await loadImageFolder({
      dir: pictures,
      imageSize: { height: 24, width: 24 },
      resize: 'pad',
      validationSplit: 0.2,
      seed: SEED,
      cacheDir: false,
    });
    const model = await loadModel(runDir);
    const n = model.layers.length;
    const body = tf.model({ inputs: model.inputs, outputs: model.layers[n - 2].output as tf.SymbolicTensor });
    const [kernel, bias] = model.layers[n - 1].getWeights();
    const ours = tf.tidy(() => {
      const x = tf.div(tf.tensor4d(test.images as Uint8Array, [test.count, 24, 24, 3], 'float32'), 255);
      return tf.add(tf.matMul(body.predict(x) as tf.Tensor2D, kernel as tf.Tensor2D), bias);
    });
    const values = ours.dataSync() as Float32Array;
    ours.dispose();
    model.dispose();
    expect(torch.length).toBe(100 * 10);
    let worst = 0;
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i] - torch[i]));
    expect(worst).toBeLessThan(TOLERANCE);
    const correct = (logits: Float32Array) =>
      test.labels.filter((label, r) => {
        const row = logits.subarray(r * 10, r * 10 + 10);
        return row.indexOf(Math.max(...row)) === label;
      }).length;
    expect(correct(torch)).toBe(correct(values));
    expect(correct(torch) / 100).toBe(json(join(runDir, 'metrics.json')).testAccuracy);
    // Trained: far from chance (0.1).
    expect(correct(torch)).toBeGreaterThan(50);
  });

  it('from a checkpoint mid-epoch, exported with --data and the folder flags: 2 ranks give the parameters of our 2 workers to 1e-4', async () => {
    const data = await loadImageFolder({
      dir: pictures,
      imageSize: { height: 24, width: 24 },
      resize: 'pad',
      validationSplit: 0.2,
      seed: SEED,
      cacheDir: false,
    });
    // Asked to stop before it starts, the run stops after its first step: 12 steps of 13 remain.
    const stopped = tempDir('pictures-stopped-');
    const run = { data, model: LAYERS, epochs: 1, batchSize: 32, workers: 2, seed: SEED };
    await train({ ...run, checkpointDir: stopped, interrupt: AbortSignal.abort() }).catch(() => undefined);
    const checkpoint = await readCheckpoint(stopped);
    expect([checkpoint.epochsDone, checkpoint.stepsDone]).toEqual([0, 1]);
    const reference = await train({ data, resume: checkpoint, workers: 2 });
    const expected = importSequential(reference.model as Parameters<typeof importSequential>[0], data, 10).params;
    // Without metrics.json the export is told where the pictures are, and how the run made them.
    const { out, result } = await exportOf(stopped, ['--data', pictures, ...FOLDER_FLAGS]);
    expect(result.stderr).toBe('');
    expect(json(join(out, 'run.json')).data.sha256).toBe(filesSha256(out, 'idx4'));
    const port = await freePort();
    const continued = await runPython(
      ['launch.py', '--nproc-per-node', '2', '--master-port', String(port), 'train_ddp.py'],
      { cwd: out, env: { GLOO_SOCKET_IFNAME: 'lo' } },
    );
    expect(continued.stderr).toBe('');
    expect(continued.stdout).toMatch(/^Continuing after epoch 0, step 1 to epoch 1 of 1: 400 images, 2 ranks /m);
    expect(continued.stdout).toContain(
      `Data: the run's pictures, as IDX files in this folder, sha256 ${filesSha256(out, 'idx4')} (the run's)`,
    );
    const params = (await readPyTorchRun(out)).params;
    let difference = 0;
    let moved = 0;
    let largest = 0;
    for (let i = 0; i < params.length; i++) {
      difference = Math.max(difference, Math.abs(params[i] - expected[i]));
      moved = Math.max(moved, Math.abs(checkpoint.params[i] - expected[i]));
      largest = Math.max(largest, Math.abs(expected[i]));
    }
    expect(difference / largest).toBeLessThan(TOLERANCE);
    expect(moved / largest).toBeGreaterThan(100 * TOLERANCE);
    const log = (await readPyTorchRun(out)).history[0];
    expect(log.testAccuracy).toBe(reference.history[0].testAccuracy);
    expect(log.loss).toBeCloseTo(reference.history[0].loss, 4);
  });

  it("train_ddp.py refuses data that is not the run's, in one line", async () => {
    const copy = join(tempDir('pictures-copy-'), 'pt');
    cpSync(exported, copy, { recursive: true });
    const other = tempDir('pictures-other-');
    for (const name of [
      'train-images-idx4-ubyte',
      'train-labels-idx1-ubyte',
      't10k-images-idx4-ubyte',
      't10k-labels-idx1-ubyte',
    ]) {
      const bytes = readFileSync(join(exported, name));
      if (name.startsWith('t10k-images')) bytes[bytes.length - 1] ^= 1;
      writeFileSync(join(other, name), bytes);
    }
    const result = await runPython([join(copy, 'train_ddp.py'), '--epochs', '1', '--data', other]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      new RegExp(
        `^error: the data in ${other} is not the run's \\(sha256 [0-9a-f]{12}\\.\\.\\., and the run's is [0-9a-f]{12}\\.\\.\\.\\): pass --data with the files it was trained on\\n$`,
      ),
    );
  });
});
