/**
 * npm run train, explore and predict on folders of real pictures: Fashion-MNIST images written as
 * PNG and JPEG files in class folders. Trained on, the PNGs give exactly the run of the same images
 * through the IDX reader; the JPEGs nearly; a tinted colour set trains on 3 channels; a model
 * trained on pictures classifies a photo-sized JPEG, prepared as its training pictures were.
 */
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseTrainArgs } from '../dist/src/cli/args.js';
import { type Dataset, DataError, loadFashionMnist, loadImageFolder, OptionError } from '../dist/src/index.js';
import {
  CLASS_FOLDERS,
  crc32,
  DEBIAN_DIR,
  jpegBytes,
  pngBytes,
  ROOT,
  runNode,
  tempDir,
  tinted,
  TRAIN_CLI,
  writeIdxFolder,
  writePictureFolder,
} from './helpers.js';

const EXPLORE_CLI = join(ROOT, 'dist', 'scripts', 'explore.js');
const PREDICT_CLI = join(ROOT, 'dist', 'scripts', 'predict.js');
const TRAIN = 3000;
const TEST = 1000;
/** Short runs: one epoch of the MLP on 3,000 pictures, 24 steps. */
const RUN = ['--workers', '2', '--epochs', '1', '--seed', '3'];

let data: Dataset;
let base: string;
const folders = { png: '', jpeg: '', idx: '', tinted: '' };

beforeAll(async () => {
  data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  const splits = { train: data.train, test: data.test } as Parameters<typeof writePictureFolder>[1];
  base = tempDir('fmnist-pictures-');
  for (const name of ['png', 'jpeg', 'idx', 'tinted'] as const) folders[name] = join(base, name);
  const order = writePictureFolder(folders.png, splits, { format: 'png', train: TRAIN, test: TEST });
  writePictureFolder(folders.jpeg, splits, { format: 'jpeg', train: TRAIN, test: TEST });
  writePictureFolder(folders.tinted, splits, { format: 'png', train: TRAIN, test: TEST, tint: true });
  // The same images through the IDX reader, in the order the folder is read: by class, then name.
  writeIdxFolder(folders.idx, splits, order);
}, 120_000);

interface Run {
  readonly stdout: string;
  readonly metrics: {
    testAccuracy: number;
    epochs: Record<string, number>[];
    config: Record<string, unknown>;
  };
  readonly weights: Buffer;
  readonly modelJson: { userDefinedMetadata?: Record<string, unknown>; modelTopology: unknown };
}

async function trainOn(dir: string, extra: string[] = []): Promise<Run & { out: string }> {
  const out = join(tempDir(), 'run');
  const result = await runNode(TRAIN_CLI, [...RUN, '--data', dir, '--out', out, ...extra]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return {
    out,
    stdout: result.stdout,
    metrics: JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')),
    weights: readFileSync(join(out, 'weights.bin')),
    modelJson: JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')),
  };
}

/** Each training run once, shared by the tests that look at it. */
const runs = new Map<string, Promise<Run & { out: string }>>();
function trained(name: string, dir: () => string, extra: string[] = []): Promise<Run & { out: string }> {
  if (!runs.has(name)) runs.set(name, trainOn(dir(), extra));
  return runs.get(name) as Promise<Run & { out: string }>;
}
const idxRun = () => trained('idx', () => folders.idx);
/** The tinted pictures on 3 channels, fitted with --resize pad (which predict then uses too). */
const colourRun = () => trained('colour', () => folders.tinted, ['--resize', 'pad']);

const withoutSeconds = (epochs: Record<string, number>[]) => epochs.map(({ seconds: _, ...rest }) => rest);

/** A PNG's RGBA pixels, decoded by @napi-rs/canvas. */
async function pixelsOf(path: string): Promise<{ width: number; height: number; data: Uint8ClampedArray }> {
  const image = await loadImage(readFileSync(path));
  const canvas = createCanvas(image.width, image.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  return { width: image.width, height: image.height, data: ctx.getImageData(0, 0, image.width, image.height).data };
}

describe('npm run train on a folder of pictures', () => {
  it('PNGs (lossless) train exactly as the same images through IDX: same losses, accuracies and weights', async () => {
    // Two processes at once: much of a run is one thread's (starting, decoding, drawing the report).
    const [idx, png] = await Promise.all([idxRun(), trainOn(folders.png)]);
    expect(withoutSeconds(png.metrics.epochs)).toEqual(withoutSeconds(idx.metrics.epochs));
    expect(png.weights.equals(idx.weights)).toBe(true);
    expect(png.metrics.testAccuracy).toBeGreaterThan(0.7);
    // What was read, said before training: the classes, the counts, the size and channels found.
    expect(png.stdout.split('\n')[0]).toBe(
      `Pictures in ${folders.png}: 10 classes (${CLASS_FOLDERS.join(', ')}); ${TRAIN} training and ${TEST} test images, ` +
        '28x28 (the most common size), grey (1 channel): none has colour',
    );
    expect(png.stdout).toMatch(
      /^ {2}decoded in \d+\.\d s and kept in .*\/\.image-cache\/[0-9a-f-]+\.bin for the next run$/m,
    );
    // The class names, in the report, the per-class table and the model's metadata.
    expect(png.stdout).toMatch(/^9-Ankle boot\s+0\.\d{4}\s+0\.\d{4}\s+\d+$/m);
    expect(JSON.parse(readFileSync(join(png.out, 'report.json'), 'utf8')).classNames).toEqual(CLASS_FOLDERS);
    expect(png.modelJson.userDefinedMetadata).toEqual({
      classNames: CLASS_FOLDERS,
      image: { height: 28, width: 28, channels: 1 },
      imageFolder: { resize: 'stretch' },
    });
    expect(png.metrics.config).toMatchObject({ data: folders.png, classNames: CLASS_FOLDERS });

    // The second run reads the cache, and trains the same.
    const again = await trainOn(folders.png);
    expect(again.stdout).toMatch(/^ {2}read from .*\/\.image-cache\/[0-9a-f-]+\.bin in \d+\.\d\d s$/m);
    expect(again.weights.equals(png.weights)).toBe(true);
  });

  it('JPEGs (lossy, quality 90) train to about the accuracy of the same images through IDX', async () => {
    const idx = await idxRun();
    const jpeg = await trainOn(folders.jpeg);
    expect(jpeg.stdout.split('\n')[0]).toContain('28x28 (the most common size), grey (1 channel): none has colour');
    expect(Math.abs(jpeg.metrics.testAccuracy - idx.metrics.testAccuracy)).toBeLessThan(0.03);
    // Close, not equal: the JPEG's pixels are not the originals.
    expect(jpeg.weights.equals(idx.weights)).toBe(false);
  });

  it('a tinted colour set trains on 3 channels, and its colour is what tells the classes apart', async () => {
    // The tints have the same brightness: in grey, the same pictures are plain Fashion-MNIST.
    const [colour, grey] = await Promise.all([colourRun(), trainOn(folders.tinted, ['--channels', '1'])]);
    expect(colour.stdout.split('\n')[0]).toContain(
      '28x28 (the most common size), colour (3 channels): some have colour',
    );
    expect(
      (colour.modelJson.modelTopology as { config: { layers: { config: Record<string, unknown> }[] } }).config.layers[0]
        .config.batch_input_shape,
    ).toEqual([null, 28, 28, 3]);
    expect(grey.stdout.split('\n')[0]).toContain('28x28 (the most common size), grey (1 channel)');
    expect(colour.metrics.testAccuracy).toBeGreaterThan(0.9);
    expect(colour.metrics.testAccuracy).toBeGreaterThan(grey.metrics.testAccuracy + 0.1);
    // The grid of predictions is in colour: the first cell's picture is its class's tint.
    const report = JSON.parse(readFileSync(join(colour.out, 'report.json'), 'utf8'));
    const first = report.grid.indices[0] as number;
    const { width, data: shown } = await pixelsOf(join(colour.out, 'predictions.png'));
    const testLabels = [...data.test.labels.subarray(0, TEST)].sort((a, b) => a - b);
    const label = testLabels[first];
    const image = data.test.images.subarray(0, TEST * 784) as Uint8Array;
    const order = Array.from({ length: TEST }, (_, i) => i).sort(
      (a, b) => data.test.labels[a] - data.test.labels[b] || a - b,
    );
    const rgb = tinted(image.subarray(order[first] * 784, (order[first] + 1) * 784), label);
    // Cell (0, 0): the image drawn 3 times as large from (18, 4) (cells are 120 wide, images 84).
    let matched = 0;
    for (let p = 0; p < 784; p++) {
      const at = 4 * ((4 + 3 * Math.floor(p / 28) + 1) * width + 18 + 3 * (p % 28) + 1);
      if ([0, 1, 2].every((c) => shown[at + c] === rgb[3 * p + c])) matched++;
    }
    expect(matched).toBe(784);
  });

  it('holds out a seeded, stratified part of train/ when there is no test/ (--validation-split)', async () => {
    const dir = join(tempDir(), 'no-test');
    cpSync(join(folders.png, 'train'), join(dir, 'train'), { recursive: true });
    const run = await trainOn(dir, ['--validation-split', '0.25']);
    const perClass = CLASS_FOLDERS.map((name) => readdirSync(join(dir, 'train', name)).length);
    const held = perClass.reduce((sum, n) => sum + Math.round(n / 4), 0);
    expect(run.stdout.split('\n')[0]).toContain(
      `${TRAIN - held} training and ${held} held-out (0.25 of each class, seed 3) images`,
    );
    expect(run.metrics.config.imageFolder).toEqual({ resize: 'stretch', validationSplit: { fraction: 0.25, seed: 3 } });
    // Stratified: each class's held-out share, in the report's supports.
    const report = JSON.parse(readFileSync(join(run.out, 'report.json'), 'utf8'));
    expect(report.perClass.map((c: { support: number }) => c.support)).toEqual(perClass.map((n) => Math.round(n / 4)));
    // npm run predict finds the same held-out pictures again, from the model's metadata.
    const out = tempDir();
    // The grid is chosen by the seed, the run's.
    const predicted = await runNode(PREDICT_CLI, ['--model', run.out, '--data', dir, '--out', out, '--seed', '3']);
    expect(predicted.stderr).toBe('');
    expect(predicted.code).toBe(0);
    expect(readFileSync(join(out, 'predictions.png')).equals(readFileSync(join(run.out, 'predictions.png')))).toBe(
      true,
    );
  });
});

describe('npm run predict and explore with a model trained on pictures', () => {
  it('classifies a photo-sized JPEG (4000x3000), fitted as the training pictures were (--resize pad), with the folder classes', async () => {
    const run = await colourRun();
    // A Sneaker, tinted, drawn 100 times as large in the middle of a 4000x3000 photo on black.
    const index = data.test.labels.findIndex((label) => label === 7);
    const sneaker = tinted(data.test.images.subarray(index * 784, (index + 1) * 784) as Uint8Array, 7);
    const photo = new Uint8Array(4000 * 3000 * 3);
    for (let y = 100; y < 2900; y++)
      for (let x = 600; x < 3400; x++) {
        const p = Math.floor((y - 100) / 100) * 28 + Math.floor((x - 600) / 100);
        photo.set(sneaker.subarray(3 * p, 3 * p + 3), 3 * (y * 4000 + x));
      }
    const dir = tempDir();
    const path = join(dir, 'photo.jpg');
    writeFileSync(path, jpegBytes(photo, 4000, 3000));
    const { code, stdout, stderr } = await runNode(PREDICT_CLI, [
      '--model',
      run.out,
      '--image',
      path,
      '--save-preprocessed',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.split('\n')[0]).toMatch(
      new RegExp(`^${path}: 7-Sneaker \\d+\\.\\d%, .* \\d+\\.\\d%, .* \\d+\\.\\d%$`),
    );
    // Padded, not stretched: 4000x3000 fits 28x21 of the 28x28, with black bands above and below.
    const seen = await pixelsOf(`${path}.28x28.png`);
    const at = (x: number, y: number) => Array.from(seen.data.subarray(4 * (y * 28 + x), 4 * (y * 28 + x) + 3));
    for (const y of [0, 2, 25, 27]) expect(at(14, y)).toEqual([0, 0, 0]);
    expect(Math.max(...at(14, 14))).toBeGreaterThan(40);
  });

  it('explore prints the shapes of a colour folder and draws the first picture of each class in turn', async () => {
    const out = tempDir();
    const { code, stdout, stderr } = await runNode(EXPLORE_CLI, ['--data', folders.tinted, '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(
      `Train Images Shape: (${TRAIN}, 28, 28, 3)\nTrain Labels Shape: (${TRAIN},)\nTest Images Shape: (${TEST}, 28, 28, 3)`,
    );
    expect(stdout).toMatch(/^9 9-Ankle boot\s+\d+\s+\d+$/m);
    expect(existsSync(join(out, 'explore.png'))).toBe(true);
  });
});

describe('a folder of pictures that is wrong in one way: one line naming the file, exit 1, nothing written', () => {
  /** A small good folder of two classes, T-shirt/top and Ankle boot, grey PNGs in train/ and test/; then a change. */
  function folder(change: (dir: string) => void = () => {}): string {
    const dir = join(tempDir(), 'pictures');
    const splits = { train: data.train, test: data.test } as Parameters<typeof writePictureFolder>[1];
    writePictureFolder(dir, splits, { format: 'png', train: 40, test: 20 });
    for (const split of ['train', 'test'])
      for (const name of readdirSync(join(dir, split)))
        if (name !== CLASS_FOLDERS[0] && name !== CLASS_FOLDERS[9]) rmSync(join(dir, split, name), { recursive: true });
    change(dir);
    return dir;
  }
  const shirts = (dir: string) => join(dir, 'train', CLASS_FOLDERS[0]);
  /** A PNG of 30000 x 30000 pixels in its header: a few bytes that would decode to 900 MB. */
  const bomb = () => {
    const bytes = pngBytes(new Uint8Array(1), 1, 1, 1);
    bytes.writeUInt32BE(30000, 16);
    bytes.writeUInt32BE(30000, 20);
    bytes.writeUInt32BE(crc32(bytes.subarray(12, 29)), 29);
    return bytes;
  };
  const grey = (i: number) => data.train.images.subarray(i * 784, (i + 1) * 784) as Uint8Array;
  /**
   * name, change, message, and how it is given: `cli`, run through npm run train (one line on
   * stderr, exit 1, no --out); else to loadImageFolder in this process (the same DataError the
   * command line prints), which saves a process start for each.
   */
  const cases: [string, (dir: string) => void, (dir: string) => string, { cli?: boolean; args?: string[] }?][] = [
    [
      'an empty class folder',
      (dir) => mkdirSync(join(dir, 'train', 'x-empty')),
      (dir) => `${dir}/train/x-empty: no pictures (.png, .jpg, .jpeg, .webp) in this class folder`,
    ],
    [
      'a single class',
      (dir) => {
        for (const split of ['train', 'test']) rmSync(join(dir, split, CLASS_FOLDERS[9]), { recursive: true });
      },
      (dir) =>
        `${dir}/train: one class folder, "${CLASS_FOLDERS[0]}"; a classifier needs at least 2, each a sub-folder of its pictures`,
    ],
    [
      'a class in test/ that train/ lacks',
      (dir) => {
        mkdirSync(join(dir, 'test', CLASS_FOLDERS[5]));
        writeFileSync(join(dir, 'test', CLASS_FOLDERS[5], 'a.png'), pngBytes(grey(0), 28, 28, 1));
      },
      (dir) =>
        `${dir}/test/${CLASS_FOLDERS[5]}: a class that ${dir}/train lacks; every test class needs training pictures`,
    ],
    [
      'a file that is not a picture',
      (dir) => writeFileSync(join(shirts(dir), 'notes.png'), 'shopping list'),
      (dir) => `${shirts(dir)}/notes.png: not a PNG, JPEG or WebP image`,
      { cli: true },
    ],
    [
      'a truncated PNG',
      (dir) => writeFileSync(join(shirts(dir), 'cut.png'), pngBytes(grey(1), 28, 28, 1).subarray(0, 200)),
      (dir) => `${shirts(dir)}/cut.png: the PNG file is truncated (it does not end with its IEND chunk)`,
    ],
    [
      'a truncated JPEG',
      (dir) => {
        const rgb = Uint8Array.from({ length: 784 * 3 }, (_, k) => grey(2)[Math.floor(k / 3)]);
        const bytes = jpegBytes(rgb, 28, 28);
        writeFileSync(join(shirts(dir), 'cut.jpg'), bytes.subarray(0, bytes.length - 20));
      },
      (dir) => `${shirts(dir)}/cut.jpg: the JPEG file is truncated (no end marker)`,
    ],
    [
      'a decompression bomb',
      (dir) => writeFileSync(join(shirts(dir), 'bomb.png'), bomb()),
      (dir) =>
        `${shirts(dir)}/bomb.png: 30000x30000 pixels, more than the 268402689 a picture may have (a decompression bomb?); not decoding it`,
    ],
    [
      'a symbolic link out of the folder',
      (dir) => symlinkSync(join(folders.png, 'train', CLASS_FOLDERS[0], '00001.png'), join(shirts(dir), 'link.png')),
      (dir) => `${shirts(dir)}/link.png: a symbolic link out of ${dir}; refusing to follow it`,
      { cli: true },
    ],
    [
      'a class folder that is a symbolic link out of the folder',
      (dir) => symlinkSync(join(folders.png, 'train', CLASS_FOLDERS[3]), join(dir, 'train', CLASS_FOLDERS[3])),
      (dir) => `${dir}/train/${CLASS_FOLDERS[3]}: a symbolic link out of ${dir}; refusing to follow it`,
    ],
    [
      'no test/ and no --validation-split',
      (dir) => rmSync(join(dir, 'test'), { recursive: true }),
      (dir) =>
        `${dir}: no test/ folder; add test/<class>/ as in train/, or hold out a part of train/ with --validation-split 0.2`,
    ],
    [
      'a test/ and --validation-split',
      () => {},
      (dir) => `${dir}/test exists: --validation-split is for a folder without one; drop it, or remove test/`,
      { args: ['--validation-split', '0.2'] },
    ],
    [
      '--layers whose output does not fit its classes',
      () => {},
      () => '--layers: the last layer must be dense:2 with softmax (one unit per class), got dense:10',
      { cli: true, args: ['--layers', 'flatten,dense:10'] },
    ],
  ];

  it.each(cases)('%s', async (_, change, message, how = {}) => {
    const dir = folder(change);
    const args = how.args ?? [];
    if (how.cli === true) {
      const out = join(tempDir(), 'run');
      const { code, stdout, stderr } = await runNode(TRAIN_CLI, [...RUN, '--data', dir, '--out', out, ...args]);
      expect(stderr.trimEnd()).toBe(`error: ${message(dir)}`);
      expect(code).toBe(1);
      expect(stdout).not.toMatch(/Test accuracy/);
      expect(existsSync(out)).toBe(false);
    } else {
      const validationSplit = args[0] === '--validation-split' ? Number(args[1]) : undefined;
      await expect(loadImageFolder({ dir, validationSplit })).rejects.toThrow(new DataError(message(dir)));
    }
    // A failed read leaves no cache behind: the next run starts again from the pictures.
    if (message(dir).startsWith(dir)) expect(existsSync(join(dir, '.image-cache'))).toBe(false);
  });

  it('bad flags for pictures, and flags for pictures with Fashion-MNIST', async () => {
    const dir = folder();
    const flagCases: [string[], string][] = [
      [
        ['--image-size', '0x5'],
        '--image-size must be HEIGHTxWIDTH or a side, each an integer between 1 and 2048, got "0x5"',
      ],
      [
        ['--image-size', '32x'],
        '--image-size must be HEIGHTxWIDTH or a side, each an integer between 1 and 2048, got "32x"',
      ],
      [['--channels', '2'], '--channels must be 1 (grey) or 3 (red, green, blue), got "2"'],
      [['--resize', 'crop'], '--resize must be stretch or pad, got "crop"'],
      [['--validation-split', '1'], '--validation-split must be a number between 0 and 1, e.g. 0.2, got "1"'],
      [['--cache', ''], '--cache needs a directory, got ""'],
    ];
    for (const [flags, message] of flagCases) {
      expect(() => parseTrainArgs(['--data', dir, ...flags])).toThrow(new OptionError(message));
    }
    expect(parseTrainArgs(['--data', dir, '--image-size', '48']).imageFolder.imageSize).toEqual({
      height: 48,
      width: 48,
    });
    const idx = await runNode(TRAIN_CLI, [...RUN, '--data', DEBIAN_DIR, '--image-size', '32', '--channels', '3']);
    expect(idx.stderr.trimEnd()).toBe(
      `error: --image-size, --channels: for a folder of pictures (--data DIR with DIR/train/<class>/); "${DEBIAN_DIR}" has no train/ folder`,
    );
    expect(idx.code).toBe(1);
  });

  it('--skip-bad-images lists what it left out, and trains on the rest', async () => {
    const dir = folder((d) => {
      writeFileSync(join(shirts(d), 'notes.png'), 'shopping list');
      writeFileSync(join(shirts(d), 'bomb.png'), bomb());
      symlinkSync(join(folders.png, 'train', CLASS_FOLDERS[0], '00001.png'), join(shirts(d), 'link.png'));
      writeFileSync(join(shirts(d), 'readme.txt'), 'not a picture, not read');
    });
    const out = join(tempDir(), 'run');
    const args = [...RUN, '--data', dir, '--out', out, '--skip-bad-images'];
    const { code, stdout, stderr } = await runNode(TRAIN_CLI, args);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const trainCount =
      readdirSync(join(dir, 'train', CLASS_FOLDERS[0])).length +
      readdirSync(join(dir, 'train', CLASS_FOLDERS[9])).length -
      4;
    expect(stdout).toContain(
      [
        `  skipped 3 that could not be read (--skip-bad-images):`,
        `    ${shirts(dir)}/bomb.png: 30000x30000 pixels, more than the 268402689 a picture may have (a decompression bomb?); not decoding it`,
        `    ${shirts(dir)}/link.png: a symbolic link out of ${dir}; refusing to follow it`,
        `    ${shirts(dir)}/notes.png: not a PNG, JPEG or WebP image`,
        `  ignored 1 files that are not .png, .jpg, .jpeg, .webp pictures in a class folder: train/${CLASS_FOLDERS[0]}/readme.txt`,
      ].join('\n'),
    );
    expect(stdout).toContain(`; ${trainCount} training and `);
    expect(stdout).toMatch(/^Test accuracy: /m);
    // From the cache, the same list; without the flag, the first of them is the error.
    const again = await loadImageFolder({ dir, skipBadImages: true });
    expect(again.summary.cache).toMatchObject({ hit: true });
    expect(again.summary.skipped.map((s) => s.path)).toEqual(
      ['bomb.png', 'link.png', 'notes.png'].map((f) => `train/${CLASS_FOLDERS[0]}/${f}`),
    );
    await expect(loadImageFolder({ dir })).rejects.toThrow(
      new DataError(`${shirts(dir)}/link.png: a symbolic link out of ${dir}; refusing to follow it`),
    );
  });
});
