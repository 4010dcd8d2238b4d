import { createCanvas, type Image, loadImage } from '@napi-rs/canvas';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { gridLayout } from '../dist/src/report/image-grid.js';
import { DEBIAN_DIR, ROOT, runNode, tempDir, TRAIN_CLI } from './helpers.js';

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

beforeAll(async () => {
  run = join(tempDir(), 'run');
  const result = await runNode(TRAIN_CLI, ['--workers', '2', '--epochs', '2', '--data', DEBIAN_DIR, '--out', run]);
  expect(result.stderr).toBe('');
  trainOutput = result.stdout;
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
    const layout = gridLayout(25, 5, 28, 1);
    expect([image.width, image.height]).toEqual([layout.width, layout.height]);
  });
});

describe('the pictures after training', () => {
  it('predictions.png: 100 test images, a red caption exactly where the prediction is wrong', async () => {
    const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
    const { image, data } = await pixelsOf(join(run, 'predictions.png'));
    const layout = gridLayout(100, 10, 28, 2);
    expect([image.width, image.height]).toEqual([layout.width, layout.height]);
    let redCells = 0;
    for (let cell = 0; cell < 100; cell++) {
      const x0 = (cell % 10) * layout.cellWidth;
      const y0 = Math.floor(cell / 10) * layout.cellHeight + layout.captionTop;
      let red = 0;
      for (let y = y0; y < y0 + layout.captionHeight; y++) {
        for (let x = x0; x < x0 + layout.cellWidth; x++) {
          const at = 4 * (y * image.width + x);
          if (data[at] > 170 && data[at + 1] < 110 && data[at + 2] < 110) red++;
        }
      }
      if (red > 10) redCells++;
    }
    expect(report.grid.indices).toHaveLength(100);
    expect(redCells).toBe(report.grid.wrong);
    expect(redCells).toBeGreaterThan(0);
    expect(redCells).toBeLessThan(40);
  });

  it('confusion-matrix.png and report.json: counts sum to 10,000, the diagonal is the accuracy', async () => {
    const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
    const metrics = JSON.parse(readFileSync(join(run, 'metrics.json'), 'utf8'));
    const matrix = report.confusionMatrix as number[][];
    expect(matrix).toHaveLength(10);
    expect(matrix.flat().reduce((a, b) => a + b, 0)).toBe(10_000);
    const diagonal = matrix.reduce((sum, row, i) => sum + row[i], 0);
    expect(diagonal / 10_000).toBe(report.accuracy);
    // The main thread's predict and the workers' evaluation agree (float rounding may flip a near tie).
    expect(report.accuracy).toBeCloseTo(metrics.testAccuracy, 3);
    const { image } = await pixelsOf(join(run, 'confusion-matrix.png'));
    expect(image.width).toBeGreaterThan(600);
    expect(image.height).toBeGreaterThan(600);
    expect(trainOutput).toMatch(/^Trouser\s+0\.\d{4}\s+0\.\d{4}\s+1000$/m);
    const curves = await pixelsOf(join(run, 'learning-curves.png'));
    expect([curves.image.width, curves.image.height]).toEqual([840, 300]);
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
