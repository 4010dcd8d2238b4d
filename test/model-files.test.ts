import { createCanvas } from '@napi-rs/canvas';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  cpSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../dist/src/errors.js';
import { writeFileAtomically } from '../dist/src/files.js';
import { loadModel, saveModel } from '../dist/src/model/files.js';
import { DEBIAN_DIR, ROOT, runNode, tempDir } from './helpers.js';
import { saveTinyModel, TINY_WEIGHT_BYTES, tinyCnn, withRandomWeights } from './tiny-model.js';

// A model directory is untrusted input (models are downloaded and shared): whatever is wrong with
// it, loadModel throws a DataError with one line that names the file, and npm run predict prints
// that line and exits 1. No file outside the directory is ever opened.

const PREDICT_CLI = join(ROOT, 'dist', 'scripts', 'predict.js');
const DAMAGED = 'the model directory is damaged: train it again or copy it whole';
const SUPPORTED =
  'loadModel reads Sequential models of Conv2D, MaxPooling2D, Flatten, Dense, Dropout, BatchNormalization and Activation layers, as npm run train writes them';

let original: string;
let model: tf.Sequential;

beforeAll(async () => {
  original = join(tempDir('fmnist-model-'), 'model');
  model = await saveTinyModel(original);
});

/** A fresh copy of the tiny model, at `<temp>/model`, so that `<temp>/outside` is outside it. */
function copy(): { dir: string; outside: string } {
  const parent = tempDir('fmnist-model-');
  const dir = join(parent, 'model');
  cpSync(original, dir, { recursive: true });
  const outside = join(parent, 'outside');
  mkdirSync(outside);
  return { dir, outside };
}

function editJson(dir: string, edit: (json: { modelTopology: any; weightsManifest: any[] }) => void): void {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  edit(json);
  writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
}

/** The error loadModel throws, or undefined when it loads the model. */
async function loadError(dir: string): Promise<unknown> {
  return loadModel(dir).then(
    (loaded) => {
      loaded.dispose();
      return undefined;
    },
    (error: unknown) => error,
  );
}

async function expectRefused(dir: string, message: string): Promise<void> {
  const error = await loadError(dir);
  expect(error).toBeInstanceOf(DataError);
  expect((error as Error).message).toBe(message);
  const { code, stdout, stderr } = await runNode(PREDICT_CLI, ['--model', dir]);
  expect({ code, stderr, stdout }).toEqual({ code: 1, stderr: `error: ${message}\n`, stdout: '' });
}

describe('loadModel and npm run predict -- --model DIR on a damaged model directory: one line, exit 1', () => {
  it('a truncated weights.bin', async () => {
    const { dir } = copy();
    truncateSync(join(dir, 'weights.bin'), 1200);
    await expectRefused(
      dir,
      `${dir}/weights.bin: 1200 bytes, but model.json's weights need ${TINY_WEIGHT_BYTES}; ${DAMAGED}`,
    );
  });

  it('a weights.bin with bytes to spare', async () => {
    const { dir } = copy();
    writeFileSync(join(dir, 'weights.bin'), new Uint8Array(4), { flag: 'a' });
    await expectRefused(
      dir,
      `${dir}/weights.bin: ${TINY_WEIGHT_BYTES + 4} bytes, but model.json's weights need ${TINY_WEIGHT_BYTES}; ${DAMAGED}`,
    );
  });

  it('a missing weights.bin', async () => {
    const { dir } = copy();
    rmSync(join(dir, 'weights.bin'));
    await expectRefused(dir, `${dir}/weights.bin: missing; ${DAMAGED}`);
  });

  it('invalid JSON in model.json', async () => {
    const { dir } = copy();
    writeFileSync(join(dir, 'model.json'), readFileSync(join(dir, 'model.json'), 'utf8').slice(0, 100));
    await expectRefused(dir, `${dir}/model.json: not valid JSON (Unexpected end of JSON input); ${DAMAGED}`);
  });

  it('a weight shape that does not match the topology', async () => {
    const { dir } = copy();
    // The same number of floats, so only the shape is wrong: tfjs would notice only after building the model.
    editJson(dir, (json) => (json.weightsManifest[0].weights[0].shape = [8, 784]));
    await expectRefused(
      dir,
      `${dir}/model.json: weightsManifest gives "hidden/kernel" the shape [8, 784], but its layer needs [784, 8]; ${DAMAGED}`,
    );
  });

  it('a weight the layers do not have, and one they need that is not listed', async () => {
    const { dir } = copy();
    editJson(dir, (json) => (json.weightsManifest[0].weights[1].name = 'hidden/extra'));
    await expectRefused(
      dir,
      `${dir}/model.json: the model needs the weight "hidden/bias", which weightsManifest does not list; ${DAMAGED}`,
    );
  });

  it('NaN in the weights', async () => {
    const { dir } = copy();
    const bytes = readFileSync(join(dir, 'weights.bin'));
    bytes.writeFloatLE(Number.NaN, 4 * 100);
    writeFileSync(join(dir, 'weights.bin'), bytes);
    await expectRefused(dir, `${dir}/weights.bin: hidden/kernel holds NaN or infinite values; ${DAMAGED}`);
  });

  it('a layer of a billion units: refused from its declared size, before anything is allocated', async () => {
    const { dir } = copy();
    editJson(dir, (json) => {
      json.modelTopology.config.layers[1].config.units = 1e9;
      json.weightsManifest[0].weights[0].shape = [784, 1e9];
      json.weightsManifest[0].weights[1].shape = [1e9];
      json.weightsManifest[0].weights[2].shape = [1e9, 10];
    });
    await tf.ready();
    const before = { tensors: tf.memory().numBytes, arrayBuffers: process.memoryUsage().arrayBuffers };
    // 4 bytes * (784e9 + 1e9 + 10e9 + 10) floats
    await expectRefused(
      dir,
      `${dir}/model.json: its weights need 3180000000040 bytes, more than the 1073741824 loadModel accepts`,
    );
    expect(tf.memory().numBytes).toBe(before.tensors);
    expect(process.memoryUsage().arrayBuffers - before.arrayBuffers).toBeLessThan(1 << 20);
  });

  it('a layer whose units disagree with its weights', async () => {
    const { dir } = copy();
    // tfjs builds the topology first: 1e6 units would allocate 3 GB of zeros, then fail on the shapes.
    editJson(dir, (json) => (json.modelTopology.config.layers[1].config.units = 1e6));
    await expectRefused(
      dir,
      `${dir}/model.json: weightsManifest gives "hidden/kernel" the shape [784, 8], but its layer needs [784, 1000000]; ${DAMAGED}`,
    );
  });

  it('a kind of layer loadModel does not build', async () => {
    const { dir } = copy();
    editJson(dir, (json) => (json.modelTopology.config.layers[1].class_name = 'LayerNormalization'));
    await expectRefused(
      dir,
      `${dir}/model.json: layer "hidden": class_name is "LayerNormalization", expected one of Conv2D, MaxPooling2D, Flatten, Dense, Dropout, BatchNormalization, Activation; ${SUPPORTED}`,
    );
  });

  it('a model.json over 1 MiB, and over 1024 weights', async () => {
    const { dir } = copy();
    writeFileSync(join(dir, 'model.json'), ' '.repeat((1 << 20) + 1));
    await expectRefused(
      dir,
      `${dir}/model.json: 1048577 bytes, more than the 1048576 a model.json may have; ${DAMAGED}`,
    );
    const { dir: other } = copy();
    editJson(other, (json) => {
      json.weightsManifest[0].weights = Array.from({ length: 1025 }, (_, i) => ({
        name: `w${i}`,
        shape: [1],
        dtype: 'float32',
      }));
    });
    await expectRefused(other, `${other}/model.json: lists more than 1024 weights or weight files; ${SUPPORTED}`);
  });

  it('a directory without model.json (loadModel; the command line checks that itself)', async () => {
    const dir = tempDir();
    const error = await loadError(dir);
    expect(error).toBeInstanceOf(DataError);
    expect((error as Error).message).toBe(
      `${dir}/model.json: no such file; pass a directory written by saveModel or npm run train`,
    );
  });
});

describe('a model directory that names files outside itself', () => {
  it('a weights path that climbs out with .., or is absolute: refused, though the file there holds valid weights', async () => {
    const { dir, outside } = copy();
    renameSync(join(dir, 'weights.bin'), join(outside, 'weights.bin'));
    editJson(dir, (json) => (json.weightsManifest[0].paths = ['../outside/weights.bin']));
    await expectRefused(
      dir,
      `${dir}/model.json: "../outside/weights.bin" is not a relative path inside ${dir}; refusing to read it`,
    );
    const absolute = join(outside, 'weights.bin');
    editJson(dir, (json) => (json.weightsManifest[0].paths = [absolute]));
    await expectRefused(
      dir,
      `${dir}/model.json: ${JSON.stringify(absolute)} is not a relative path inside ${dir}; refusing to read it`,
    );
  });

  it('a weights path with a line break or a terminal escape: refused, and the message stays one line', async () => {
    const { dir } = copy();
    editJson(dir, (json) => (json.weightsManifest[0].paths = ['weights\n\u001b[2Jbin']));
    await expectRefused(
      dir,
      `${dir}/model.json: the file name "weights\\n\\u001b[2Jbin" holds control characters; refusing it`,
    );
  });

  it('a symbolic link that leads out of the directory: refused, not followed', async () => {
    const { dir, outside } = copy();
    renameSync(join(dir, 'weights.bin'), join(outside, 'weights.bin'));
    symlinkSync('../outside/weights.bin', join(dir, 'weights.bin'));
    await expectRefused(dir, `${dir}/weights.bin: a symbolic link out of ${dir}; refusing to follow it`);
  });

  it('a FIFO outside, named by the manifest or by a link: never opened (opening it would block)', async () => {
    const { dir, outside } = copy();
    const fifo = join(outside, 'pipe');
    execFileSync('mkfifo', [fifo]);
    editJson(dir, (json) => (json.weightsManifest[0].paths = ['../outside/pipe']));
    const byPath = `${dir}/model.json: "../outside/pipe" is not a relative path inside ${dir}; refusing to read it`;
    expect(await watching(fifo, loadError(dir))).toEqual(new DataError(byPath));
    expect((await watching(fifo, runNode(PREDICT_CLI, ['--model', dir]))).stderr).toBe(`error: ${byPath}\n`);

    editJson(dir, (json) => (json.weightsManifest[0].paths = ['weights.bin']));
    rmSync(join(dir, 'weights.bin'));
    symlinkSync(fifo, join(dir, 'weights.bin'));
    const byLink = `${dir}/weights.bin: a symbolic link out of ${dir}; refusing to follow it`;
    expect(await watching(fifo, loadError(dir))).toEqual(new DataError(byLink));
    expect((await watching(fifo, runNode(PREDICT_CLI, ['--model', dir]))).stderr).toBe(`error: ${byLink}\n`);
  });

  it('a FIFO inside the directory as weights.bin: refused without hanging', async () => {
    const { dir } = copy();
    rmSync(join(dir, 'weights.bin'));
    execFileSync('mkfifo', [join(dir, 'weights.bin')]);
    expect(await watching(join(dir, 'weights.bin'), loadError(dir))).toEqual(
      new DataError(`${dir}/weights.bin: not a regular file; refusing to read it`),
    );
  });
});

describe('npm run predict on a model directory whose model loads', () => {
  async function expectCliError(dir: string, message: string): Promise<void> {
    const { code, stdout, stderr } = await runNode(PREDICT_CLI, ['--model', dir]);
    expect({ code, stderr, stdout }).toEqual({ code: 1, stderr: `error: ${message}\n`, stdout: '' });
  }

  it('a model for other images: refused before it sees one', async () => {
    const { dir } = copy();
    // 14x56 is 784 pixels too, so the weights still fit and loadModel accepts it.
    editJson(dir, (json) => (json.modelTopology.config.layers[0].config.batch_input_shape = [null, 14, 56]));
    await expectCliError(
      dir,
      `${dir}/model.json: the model takes inputs of shape [14, 56] and gives [10]; predict needs 28x28 images in and its 10 classes out`,
    );
  });

  it('a damaged metrics.json, or one that leads out of the directory', async () => {
    const { dir, outside } = copy();
    const metrics = join(dir, 'metrics.json');
    writeFileSync(metrics, '{"epochs": [');
    await expectCliError(dir, `${metrics}: not valid JSON (Unexpected end of JSON input); ${DAMAGED}`);
    writeFileSync(metrics, JSON.stringify({ epochs: [{ epoch: 1, loss: 'low' }] }));
    await expectCliError(
      dir,
      `${metrics}: "epochs" is not a list of {epoch, loss, accuracy, testLoss, testAccuracy, seconds}; ${DAMAGED}`,
    );
    rmSync(metrics);
    const fifo = join(outside, 'pipe');
    execFileSync('mkfifo', [fifo]);
    symlinkSync(fifo, metrics);
    const { code, stderr } = await watching(fifo, runNode(PREDICT_CLI, ['--model', dir]));
    expect({ code, stderr }).toEqual({
      code: 1,
      stderr: `error: ${metrics}: a symbolic link out of ${dir}; refusing to follow it\n`,
    });
  });
});

describe('npm run predict writing into a model directory from elsewhere', () => {
  it('replaces symbolic links planted under the names of its pictures, never writes through them', async () => {
    const { dir, outside } = copy();
    const epoch = (n: number) => ({
      epoch: n,
      loss: 1 / n,
      accuracy: 0.5,
      testLoss: 1 / n,
      testAccuracy: 0.5,
      seconds: 1,
    });
    writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ epochs: [epoch(1), epoch(2)] }));
    const names = ['predictions.png', 'confusion-matrix.png', 'learning-curves.png', 'report.json'];
    for (const name of names) {
      writeFileSync(join(outside, name), `not to be overwritten: ${name}`);
      symlinkSync(join(outside, name), join(dir, name));
    }
    const { code, stderr } = await runNode(PREDICT_CLI, ['--model', dir, '--data', DEBIAN_DIR]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    for (const name of names) {
      expect(readFileSync(join(outside, name), 'utf8')).toBe(`not to be overwritten: ${name}`);
      expect(lstatSync(join(dir, name)).isFile()).toBe(true);
    }
  });

  it('writeFileAtomically does not write through a link planted under its temporary name either', () => {
    const { dir, outside } = copy();
    writeFileSync(join(outside, 'target'), 'not to be overwritten');
    symlinkSync(join(outside, 'target'), join(dir, `report.json.tmp-${process.pid}`));
    writeFileAtomically(join(dir, 'report.json'), '{}');
    expect(readFileSync(join(outside, 'target'), 'utf8')).toBe('not to be overwritten');
    expect(readFileSync(join(dir, 'report.json'), 'utf8')).toBe('{}');
  });
});

describe('a valid model directory', () => {
  it('loads the model that was saved: same layers, same predictions, no tensor left behind', async () => {
    await tf.ready();
    const before = tf.memory().numTensors;
    const loaded = await loadModel(original);
    expect(loaded.layers.map((layer) => [layer.getClassName(), layer.name])).toEqual([
      ['Flatten', 'flatten'],
      ['Dense', 'hidden'],
      ['Dense', 'output'],
    ]);
    const [expected, actual] = tf.tidy(() => {
      const x = tf.randomUniform([5, 28, 28], 0, 1, 'float32', 7);
      return [model, loaded].map((m) => Array.from((m.predict(x) as tf.Tensor).dataSync()));
    });
    expect(actual).toEqual(expected);
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('symbolic links that stay inside it are followed, and it may itself be one', async () => {
    const { dir, outside } = copy();
    mkdirSync(join(dir, 'data'));
    renameSync(join(dir, 'weights.bin'), join(dir, 'data', 'weights.bin'));
    symlinkSync('data/weights.bin', join(dir, 'weights.bin'));
    const link = join(outside, 'latest');
    symlinkSync(dir, link);
    const loaded = await loadModel(link);
    expect(loaded.countParams()).toBe(TINY_WEIGHT_BYTES / 4);
    loaded.dispose();
  });
});

describe('a convolutional model directory, as npm run train --model cnn writes', () => {
  let cnnDir: string;
  let cnn: tf.Sequential;
  beforeAll(async () => {
    cnnDir = join(tempDir('fmnist-model-'), 'cnn');
    cnn = await saveTinyModel(cnnDir, tinyCnn);
  });

  it('loads with the same predictions, and npm run predict classifies a picture with it', async () => {
    const loaded = await loadModel(cnnDir);
    const [expected, actual] = tf.tidy(() => {
      const x = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 7);
      return [cnn, loaded].map((m) => Array.from((m.predict(x) as tf.Tensor).dataSync()));
    });
    expect(actual).toEqual(expected);
    loaded.dispose();
    const picture = join(tempDir(), 'square.png');
    const canvas = createCanvas(40, 40);
    canvas.getContext('2d').fillRect(10, 10, 20, 20);
    writeFileSync(picture, canvas.toBuffer('image/png'));
    const { code, stdout, stderr } = await runNode(PREDICT_CLI, ['--model', cnnDir, '--image', picture]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(new RegExp(`^${picture}: \\S.* \\d+\\.\\d%, .* \\d+\\.\\d%, .* \\d+\\.\\d%$`, 'm'));
  });

  it('a kernel whose shape does not match its layer, and pooling that changes what Dense receives', async () => {
    const dir = join(tempDir('fmnist-model-'), 'cnn');
    cpSync(cnnDir, dir, { recursive: true });
    editJson(dir, (json) => (json.weightsManifest[0].weights[0].shape = [3, 3, 2, 1]));
    await expectRefused(
      dir,
      `${dir}/model.json: weightsManifest gives "conv/kernel" the shape [3, 3, 2, 1], but its layer needs [3, 3, 1, 2]; ${DAMAGED}`,
    );
    editJson(dir, (json) => {
      json.weightsManifest[0].weights[0].shape = [3, 3, 1, 2];
      // Stride 1 instead of 2: 27x27x2 = 1458 inputs to the dense layer, not 14x14x2 = 392.
      json.modelTopology.config.layers[1].config.strides = [1, 1];
    });
    await expectRefused(
      dir,
      `${dir}/model.json: weightsManifest gives "output/kernel" the shape [392, 10], but its layer needs [1458, 10]; ${DAMAGED}`,
    );
  });

  it('shapes as tfjs builds them, for any kernel, pool size, stride, padding and dilation: loaded, same predictions', async () => {
    const dir = tempDir('fmnist-model-');
    const size = fc.integer({ min: 1, max: 4 });
    const conv = fc.record({
      filters: fc.integer({ min: 1, max: 3 }),
      kernelSize: fc.oneof(size, fc.tuple(size, size)),
      strides: fc.oneof(size, fc.tuple(size, size)),
      dilationRate: fc.constantFrom(1, 2),
      padding: fc.constantFrom('valid' as const, 'same' as const),
      useBias: fc.boolean(),
    });
    const pool = fc.record({
      poolSize: fc.oneof(size, fc.tuple(size, size)),
      strides: fc.option(size, { nil: undefined }),
      padding: fc.constantFrom('valid' as const, 'same' as const),
    });
    const model = fc.record({
      input: fc.tuple(fc.integer({ min: 4, max: 14 }), fc.integer({ min: 4, max: 14 }), fc.integer({ min: 1, max: 3 })),
      blocks: fc.array(fc.tuple(conv, fc.option(pool, { nil: undefined }), fc.boolean()), {
        minLength: 1,
        maxLength: 2,
      }),
    });
    let built = 0;
    await fc.assert(
      fc.asyncProperty(model, async ({ input, blocks }) => {
        const original = tf.sequential();
        try {
          blocks.forEach(([c, p, dropout], i) => {
            // tfjs's conv2d runs a dilation rate only with stride 1 (loadModel refuses the others).
            const strides = c.dilationRate > 1 ? 1 : c.strides;
            original.add(tf.layers.conv2d({ ...c, strides, inputShape: i === 0 ? input : undefined }));
            if (p !== undefined) original.add(tf.layers.maxPooling2d(p));
            if (dropout) original.add(tf.layers.dropout({ rate: 0.5 }));
          });
          original.add(tf.layers.flatten());
          original.add(tf.layers.dense({ units: 3 }));
        } catch {
          original.dispose();
          return; // sizes tfjs itself refuses
        }
        // tfjs also builds layers with no rows or columns left (a window larger than its input);
        // loadModel refuses those as damaged, so they are not models to compare.
        if (original.layers.some((layer) => (layer.outputShape as number[]).includes(0))) {
          original.dispose();
          return;
        }
        built++;
        withRandomWeights(original);
        const path = join(dir, `m${built}`);
        await saveModel(original, path);
        const loaded = await loadModel(path);
        const [expected, actual] = tf.tidy(() => {
          const x = tf.randomUniform([2, ...input], 0, 1, 'float32', 3);
          return [original, loaded].map((m) => Array.from((m.predict(x) as tf.Tensor).dataSync()));
        });
        expect(actual).toEqual(expected);
        original.dispose();
        loaded.dispose();
      }),
      { numRuns: 60 },
    );
    expect(built).toBeGreaterThan(20);
  });
});

/**
 * Waits for `action` while watching `fifo`: throws if anything opens the FIFO for reading meanwhile
 * (such an open blocks until a writer comes, so the watcher's own open, of the write end, frees it).
 */
async function watching<T>(fifo: string, action: Promise<T>): Promise<T> {
  let settled = false;
  const outcome = action.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  void outcome.finally(() => (settled = true));
  while (!settled) {
    if (hasReader(fifo)) throw new Error(`${fifo} was opened for reading`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const result = await outcome;
  if ('error' in result) throw result.error;
  return result.value;
}

/** True when some process has the FIFO open for reading: only then does a non-blocking open of its write end succeed. */
function hasReader(fifo: string): boolean {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENXIO') return false;
    throw error;
  }
}
