import { createCanvas, type Image, loadImage, type SKRSContext2D } from '@napi-rs/canvas';
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnist, loadModel, type Split } from '../dist/src/index.js';
import { CONFUSION, CURVES_PANEL } from '../dist/src/report/charts.js';
import { gridLayout } from '../dist/src/report/image-grid.js';
import { DEBIAN_DIR, realSubset, ROOT, runNode, tempDir, TRAIN_CLI } from './helpers.js';

const EXPLORE_CLI = join(ROOT, 'dist', 'scripts', 'explore.js');
const PREDICT_CLI = join(ROOT, 'dist', 'scripts', 'predict.js');

async function pixelsOf(path: string): Promise<{ image: Image; data: Uint8ClampedArray }> {
  const image = await loadImage(readFileSync(path));
  const canvas = createCanvas(image.width, image.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  return { image, data: ctx.getImageData(0, 0, image.width, image.height).data };
}

let run: string;
let trainOutput: string;
let test: Split;
/** The saved model's class for each test image, predicted here: independent of the report's own. */
let predicted: Int32Array;

beforeAll(async () => {
  run = join(tempDir(), 'run');
  // The first 12,000 training images and the whole test set: the pictures are of the test split
  // and the saved model's answers on it, and two epochs on a fifth of the training set still make a
  // model that gets most answers right, and some wrong.
  const data = realSubset(12_000, 10_000);
  const result = await runNode(TRAIN_CLI, ['--workers', '2', '--epochs', '2', '--data', data, '--out', run]);
  expect(result.stderr).toBe('');
  trainOutput = result.stdout;
  test = (await loadFashionMnist({ dir: DEBIAN_DIR, env: {} })).test;
  const model = await loadModel(run);
  predicted = tf.tidy(() => {
    const x = tf.div(tf.tensor3d(test.images, [test.count, 28, 28], 'float32'), 255);
    return (model.predict(x, { batchSize: 1000 }) as tf.Tensor).argMax(1).dataSync() as Int32Array;
  });
}, 120_000);

describe('npm run explore', () => {
  it('prints what the tutorial prints and draws the first 25 training images with their classes', async () => {
    const out = tempDir();
    const { code, stdout, stderr } = await runNode(EXPLORE_CLI, ['--data', DEBIAN_DIR, '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(
      'Train Images Shape: (60000, 28, 28)\nTrain Labels Shape: (60000,)\nTest Images Shape: (10000, 28, 28)\nTest Labels Shape: (10000,)',
    );
    expect(stdout).toMatch(/^Pixel range: 0 to 255/m);
    expect(stdout).toMatch(/^9 Ankle boot\s+6000\s+1000$/m);
    const { image } = await pixelsOf(join(out, 'explore.png'));
    const layout = gridLayout(25, 5, { width: 28, height: 28 }, 1);
    expect([image.width, image.height]).toEqual([layout.width, layout.height]);
  });
});

describe('the pictures after training', () => {
  it('predictions.png: 100 test images, a red caption exactly where the prediction is wrong', async () => {
    const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
    const { image, data } = await pixelsOf(join(run, 'predictions.png'));
    const layout = gridLayout(100, 10, { width: 28, height: 28 }, 2);
    expect([image.width, image.height]).toEqual([layout.width, layout.height]);
    const indices = report.grid.indices as number[];
    expect(new Set(indices).size).toBe(100);
    let wrong = 0;
    indices.forEach((index, cell) => {
      const x0 = (cell % 10) * layout.cellWidth;
      const y0 = Math.floor(cell / 10) * layout.cellHeight;
      // The cell shows test image `index` (dark on white, 3 screen pixels per image pixel)...
      const imageX = x0 + (layout.cellWidth - layout.imageWidth) / 2;
      const shown = Uint8Array.from({ length: 784 }, (_, i) => {
        const at = 4 * ((y0 + 4 + 3 * Math.floor(i / 28) + 1) * image.width + imageX + 3 * (i % 28) + 1);
        return 255 - data[at];
      });
      expect(shown).toEqual(test.images.subarray(index * 784, (index + 1) * 784));
      // ...and its caption is red exactly when the model, run here, gets that image wrong.
      let red = 0;
      for (let y = y0 + layout.captionTop; y < y0 + layout.captionTop + layout.captionHeight; y++) {
        for (let x = x0; x < x0 + layout.cellWidth; x++) {
          const at = 4 * (y * image.width + x);
          if (data[at] > 170 && data[at + 1] < 110 && data[at + 2] < 110) red++;
        }
      }
      const isWrong = predicted[index] !== test.labels[index];
      if (isWrong) wrong++;
      expect(red > 10, `cell ${cell} (test image ${index}): red caption`).toBe(isWrong);
    });
    expect(wrong).toBeGreaterThan(0);
    expect(report.grid.wrong).toBe(wrong);
  });

  it("confusion-matrix.png and report.json: the counts of the saved model's answers, and each cell shaded by its share of the row", async () => {
    const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
    const metrics = JSON.parse(readFileSync(join(run, 'metrics.json'), 'utf8'));
    const counts = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
    predicted.forEach((p, i) => counts[test.labels[i]][p]++);
    const correct = counts.reduce((sum, row, c) => sum + row[c], 0);
    expect(report.confusionMatrix).toEqual(counts);
    expect(report.accuracy).toBe(correct / 10_000);
    // The main thread's predict and the workers' evaluation agree (float rounding may flip a near tie).
    expect(metrics.testAccuracy).toBeCloseTo(correct / 10_000, 3);
    const trouser = counts[1][1];
    const precision = trouser / counts.reduce((sum, row) => sum + row[1], 0);
    expect(trainOutput).toMatch(
      new RegExp(`^Trouser\\s+${precision.toFixed(4)}\\s+${(trouser / 1000).toFixed(4)}\\s+1000$`, 'm'),
    );
    // Each cell's colour, read in its corner (clear of the count written in its middle).
    const { data, image } = await pixelsOf(join(run, 'confusion-matrix.png'));
    counts.forEach((row, t) =>
      row.forEach((count, p) => {
        const share = count / row.reduce((a, b) => a + b, 0);
        const x = CONFUSION.left + p * CONFUSION.cell + 6;
        const y = CONFUSION.top + t * CONFUSION.cell + 6;
        const at = 4 * (y * image.width + x);
        const rgb = [data[at], data[at + 1], data[at + 2]];
        const expected = [Math.round(255 * (1 - share)), Math.round(255 - 150 * share), 255];
        expect(
          rgb.every((v, i) => Math.abs(v - expected[i]) <= 1),
          `row ${t}, column ${p}: rgb ${rgb}, expected ${expected}`,
        ).toBe(true);
      }),
    );
  });

  it('learning-curves.png: a point of each series at each epoch, where the metrics put it', async () => {
    const metrics = JSON.parse(readFileSync(join(run, 'metrics.json'), 'utf8'));
    const history = metrics.epochs as { loss: number; accuracy: number; testLoss: number; testAccuracy: number }[];
    expect(history).toHaveLength(2);
    const { data, image } = await pixelsOf(join(run, 'learning-curves.png'));
    expect([image.width, image.height]).toEqual([2 * CURVES_PANEL.width, CURVES_PANEL.height]);
    // Matplotlib's first two colours: train blue, test orange.
    const colours = { train: [0x1f, 0x77, 0xb4], test: [0xff, 0x7f, 0x0e] };
    const { width, height, left, top, right, bottom } = CURVES_PANEL;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const panels = [
      { train: history.map((h) => h.loss), test: history.map((h) => h.testLoss) },
      { train: history.map((h) => h.accuracy), test: history.map((h) => h.testAccuracy) },
    ];
    panels.forEach((series, panel) => {
      // The values span the plot's height, with a tenth of their range free above and below.
      const all = [...series.train, ...series.test];
      const pad = (Math.max(...all) - Math.min(...all)) * 0.1;
      const lo = Math.min(...all) - pad;
      const hi = Math.max(...all) + pad;
      const yOf = (v: number) => top + (1 - (v - lo) / (hi - lo)) * plotHeight;
      for (const epoch of [0, 1]) {
        const x = Math.floor(panel * width + left + epoch * plotWidth);
        const near = Math.abs(yOf(series.train[epoch]) - yOf(series.test[epoch])) < 6;
        for (const name of ['train', 'test'] as const) {
          const at = 4 * (Math.floor(yOf(series[name][epoch])) * image.width + x);
          const rgb = [data[at], data[at + 1], data[at + 2]];
          // Where the two points overlap, the one drawn last (test) may cover the other.
          const allowed = near ? [colours.train, colours.test] : [colours[name]];
          const matches = allowed.some((c) => c.every((v, i) => Math.abs(v - rgb[i]) <= 8));
          expect(matches, `panel ${panel}, epoch ${epoch + 1}, ${name}: rgb ${rgb}`).toBe(true);
        }
      }
    });
  });

  it('npm run predict -- --model DIR draws the same pictures again', async () => {
    const out = tempDir();
    const { code, stdout, stderr } = await runNode(PREDICT_CLI, ['--model', run, '--data', DEBIAN_DIR, '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(readFileSync(join(out, 'predictions.png')).equals(readFileSync(join(run, 'predictions.png')))).toBe(true);
    expect(stdout).toMatch(/^all\s+accuracy 0\.\d{4} on 10000 images$/m);
  });
});

describe('npm run predict -- --image', () => {
  it('turns a photo-like picture (dark trousers on white, 300x400, colour) into a light object on black, and classifies it', async () => {
    const dir = tempDir();
    const canvas = createCanvas(300, 400);
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#f4f1ea';
    ctx.fillRect(0, 0, 300, 400);
    ctx.fillStyle = '#1c2a4a'; // denim blue
    ctx.fillRect(100, 40, 100, 50); // waist
    ctx.fillRect(100, 80, 45, 290); // left leg
    ctx.fillRect(155, 80, 45, 290); // right leg
    const photo = join(dir, 'trousers.jpg');
    writeFileSync(photo, canvas.toBuffer('image/jpeg'));
    const { code, stdout, stderr } = await runNode(PREDICT_CLI, [
      '--model',
      run,
      '--image',
      photo,
      '--save-preprocessed',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^${photo}: \\S.* \\d+\\.\\d%, .* \\d+\\.\\d%, .* \\d+\\.\\d%$`, 'm'));
    expect(stdout.split('\n')[0]).toMatch(/: Trouser \d+\.\d%/);
    const { image, data } = await pixelsOf(`${photo}.28x28.png`);
    expect([image.width, image.height]).toEqual([28, 28]);
    const grey = (x: number, y: number) => data[4 * (y * 28 + x)];
    const corners = [grey(0, 0), grey(27, 0), grey(0, 27), grey(27, 27)];
    expect(Math.max(...corners)).toBeLessThan(30);
    expect(grey(11, 14)).toBeGreaterThan(150); // inside the left leg
  });

  it('classifies several pictures in one call, each as it would be alone; a light object on a dark background stays light', async () => {
    const dir = tempDir();
    const draw = (name: string, background: string, ink: string, shape: (ctx: SKRSContext2D) => void) => {
      const canvas = createCanvas(200, 240);
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = background;
      ctx.fillRect(0, 0, 200, 240);
      ctx.fillStyle = ink;
      shape(ctx);
      const path = join(dir, name);
      writeFileSync(path, canvas.toBuffer('image/png'));
      return path;
    };
    // A pale bag with a handle on near-black, as Fashion-MNIST's own images look; a dark T-shirt on white.
    const bag = draw('bag.png', '#0c0c0c', '#d8d0c0', (ctx) => {
      ctx.fillRect(30, 100, 140, 110);
      ctx.fillRect(60, 50, 12, 50);
      ctx.fillRect(128, 50, 12, 50);
      ctx.fillRect(60, 50, 80, 12);
    });
    const shirt = draw('shirt.png', '#ffffff', '#303850', (ctx) => {
      ctx.fillRect(20, 30, 160, 50);
      ctx.fillRect(55, 30, 90, 190);
    });
    const lines = (stdout: string) => stdout.split('\n').filter((line) => line.startsWith(dir));
    const both = await runNode(PREDICT_CLI, ['--model', run, '--image', bag, shirt, '--save-preprocessed']);
    expect(both.stderr).toBe('');
    expect(both.code).toBe(0);
    const answers = lines(both.stdout);
    expect(answers).toHaveLength(2);
    for (const [i, path] of [bag, shirt].entries()) {
      expect(answers[i]).toMatch(new RegExp(`^${path}: \\S.* \\d+\\.\\d%, .* \\d+\\.\\d%, .* \\d+\\.\\d%$`));
      const alone = await runNode(PREDICT_CLI, ['--model', run, '--image', path]);
      expect(lines(alone.stdout)).toEqual([answers[i]]);
    }
    // The bag was not inverted: light on black, as the model was trained.
    const { data } = await pixelsOf(`${bag}.28x28.png`);
    const grey = (x: number, y: number) => data[4 * (y * 28 + x)];
    expect(Math.max(grey(0, 0), grey(27, 0), grey(0, 27), grey(27, 27))).toBeLessThan(30);
    expect(grey(14, 20)).toBeGreaterThan(150); // the bag's body
  });

  it('refuses a picture of one flat colour among others: one error line, and no picture classified', async () => {
    const dir = tempDir();
    const picture = (name: string, fill: (ctx: SKRSContext2D) => void) => {
      const canvas = createCanvas(60, 60);
      fill(canvas.getContext('2d'));
      writeFileSync(join(dir, name), canvas.toBuffer('image/png'));
      return join(dir, name);
    };
    const good = picture('good.png', (ctx) => {
      ctx.fillStyle = '#ffffff';
      ctx.fillRect(0, 0, 60, 60);
      ctx.fillStyle = '#000000';
      ctx.fillRect(20, 10, 20, 40);
    });
    const flat = picture('flat.png', (ctx) => {
      ctx.fillStyle = '#808080';
      ctx.fillRect(0, 0, 60, 60);
    });
    const { code, stdout, stderr } = await runNode(PREDICT_CLI, ['--model', run, '--image', good, flat]);
    expect(code).toBe(1);
    expect(stderr.trimEnd()).toBe(`error: ${flat}: found no object on the background (the image is one flat colour)`);
    expect(stdout).toBe('');
  });

  it('gives one clear error line for files that are not images, and a model directory without model.json', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    writeFileSync(join(dir, 'empty.png'), '');
    const png = createCanvas(40, 40).toBuffer('image/png');
    writeFileSync(join(dir, 'cut.png'), png.subarray(0, png.length - 20));
    const cases: [string[], string][] = [
      [
        ['--model', run, '--image', join(dir, 'notes.txt')],
        `error: ${join(dir, 'notes.txt')}: not a PNG or JPEG image`,
      ],
      [
        ['--model', run, '--image', join(dir, 'empty.png')],
        `error: ${join(dir, 'empty.png')}: the file is empty, not an image`,
      ],
      [
        ['--model', run, '--image', join(dir, 'cut.png')],
        `error: ${join(dir, 'cut.png')}: the PNG file is truncated (no IEND chunk)`,
      ],
      [
        ['--model', dir, '--image', join(dir, 'notes.txt')],
        `error: --model "${dir}" has no model.json; pass a directory written by npm run train`,
      ],
    ];
    for (const [args, message] of cases) {
      const { code, stdout, stderr } = await runNode(PREDICT_CLI, args);
      expect(code).toBe(1);
      expect(stderr.trimEnd()).toBe(message);
      expect(stdout).toBe('');
    }
  });
});
