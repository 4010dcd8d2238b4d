/**
 * The page of `npm run web`, in Debian's Chromium (headless, driven by playwright-core): it trains
 * with the same trainer on Web Workers, and what it shows is checked against the model it lets you
 * download, scored here in Node.
 */
import { createCanvas } from '@napi-rs/canvas';
import * as tf from '@tensorflow/tfjs';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { train } from '../dist/src/coordinator/node-platform.js';
import type { Dataset, Split } from '../dist/src/data/dataset.js';
import { loadFashionMnist, locateFashionMnist } from '../dist/src/data/fashion-mnist.js';
import { loadModel } from '../dist/src/model/files.js';
import { buildNetwork, initializeParams } from '../dist/src/model/network.js';
import { presetLayers } from '../dist/src/model/spec.js';
import { preprocessImage } from '../dist/src/report/preprocess.js';
import { Rng } from '../dist/src/rng.js';
import { buildPage } from '../dist/src/web/build.js';
import { launchChromium } from '../dist/src/web/chromium.js';
import { readPicture, loadImageFolder } from '../dist/src/data/image-folder.js';
import { topClasses } from '../dist/src/report/predictions.js';
import {
  type PageSettings,
  pageReady,
  readPicturesOnPage,
  startTraining,
  trainOnPage,
} from '../dist/src/web/page-driver.js';
import { type PageServer, servePage } from '../dist/src/web/server.js';
import {
  CLASS_FOLDERS,
  DEBIAN_DIR,
  filesUnder,
  realSubset,
  ROOT,
  tempDir,
  tinyDataset,
  writePictureFolder,
  zipBytes,
} from './helpers.js';

const CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
/** The page's own, in `evaluate` callbacks (these tests are type-checked without the DOM's types). */
declare const getComputedStyle: (element: unknown) => { readonly color: string };

const INK = 'rgb(34, 34, 34)';
const RED = 'rgb(214, 39, 40)';

let browser: Browser;
let server: PageServer;
let data: Dataset;
/**
 * The same page on the first 2,000 training and 500 test images of the real data, for the runs
 * compared parameter for parameter with Node: after an epoch both sides score the test split, which
 * for the CNN costs more than its training; the parameters do not depend on it.
 */
let subsetServer: PageServer;
let subset: Dataset;

beforeAll(async () => {
  const pageDir = await buildPage();
  server = await servePage({ pageDir, dataFiles: await locateFashionMnist({ dir: DEBIAN_DIR }), port: 0 });
  const subsetDir = realSubset(2000, 500);
  subsetServer = await servePage({ pageDir, dataFiles: await locateFashionMnist({ dir: subsetDir }), port: 0 });
  browser = await launchChromium();
  data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
  subset = await loadFashionMnist({ dir: subsetDir, env: {} });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await subsetServer?.close();
});

/** A fresh page of the server at `url`, ready to train. */
async function openPage(url = server.url): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  await page.goto(url);
  await pageReady(page);
  return { context, page };
}

/** The model the page offers for download, loaded in Node with the project's checking loader. */
async function downloadModel(page: Page): Promise<tf.LayersModel> {
  const dir = tempDir('fmnist-download-');
  const downloads: Promise<unknown>[] = [];
  const done = new Promise<void>((resolve) => {
    page.on('download', (download) => {
      downloads.push(download.saveAs(join(dir, download.suggestedFilename())));
      if (downloads.length === 2) resolve();
    });
  });
  await page.click('#download');
  await done;
  await Promise.all(downloads);
  return loadModel(dir);
}

/** The model's class for each image of a split, computed here in Node with tfjs. */
function predictionsOf(model: tf.LayersModel, split: Split): Int32Array {
  return tf.tidy(() => {
    const x = tf.div(tf.tensor3d(split.images, [split.count, 28, 28], 'float32'), 255);
    const input = model.inputs[0].shape.length === 4 ? tf.expandDims(x, 3) : x;
    return (model.predict(input, { batchSize: 1000 }) as tf.Tensor).argMax(1).dataSync() as Int32Array;
  });
}

/** The model's three likeliest classes for one 28x28 grey image, computed here in Node: name and percent. */
function top3Of(model: tf.LayersModel, pixels: Uint8Array): { name: string; percent: number }[] {
  const probabilities = tf.tidy(() =>
    (model.predict(tf.div(tf.tensor3d(pixels, [1, 28, 28], 'float32'), 255)) as tf.Tensor).dataSync(),
  );
  return Array.from(probabilities.keys())
    .sort((a, b) => probabilities[b] - probabilities[a])
    .slice(0, 3)
    .map((c) => ({ name: CLASSES[c], percent: 100 * probabilities[c] }));
}

/**
 * Expects the page's top 3 list (`Class 12.3%` each) to be Node's: the same classes in the same
 * order, each percentage Node's to its one decimal (within a rounding step: the page computes in
 * float32 on wasm).
 */
function expectTop3(shown: string[], expected: { name: string; percent: number }[]): void {
  expect(shown).toHaveLength(3);
  shown.forEach((line, i) => {
    const match = /^(\S.*) (\d+\.\d)%$/.exec(line);
    expect(match?.[1], shown.join(', ')).toBe(expected[i].name);
    expect(Math.abs(Number(match?.[2]) - expected[i].percent), shown.join(', ')).toBeLessThanOrEqual(0.06);
  });
}

/** A preset model's initial parameters for a seed, as the trainer draws them, in Keras's weight order. */
function initialParams(preset: 'mlp' | 'cnn', seed: number): Float32Array {
  const network = buildNetwork(presetLayers(preset, 10), { height: 28, width: 28 }, 10, 'test');
  const params = new Float32Array(network.paramCount);
  initializeParams(network, params, new Float32Array(network.stateCount), new Rng(seed));
  return params;
}

/** A model's weights, one after the other: the trainer's flat parameter vector. */
function flatWeights(model: tf.LayersModel): Float32Array {
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  const flat = new Float32Array(weights.reduce((n, w) => n + w.length, 0));
  let at = 0;
  for (const w of weights) {
    flat.set(w, at);
    at += w.length;
  }
  return flat;
}

function firstImages(split: Split, count: number): Split {
  return { images: split.images.subarray(0, count * 784), labels: split.labels.subarray(0, count), count };
}

/** The largest difference between two models' weights, tensor by tensor. */
function maxWeightDifference(a: tf.LayersModel, b: tf.LayersModel): number {
  const left = a.getWeights();
  const right = b.getWeights();
  expect(right.map((w) => w.shape)).toEqual(left.map((w) => w.shape));
  return Math.max(
    ...left.map((w, i) => {
      const x = w.dataSync() as Float32Array;
      const y = right[i].dataSync() as Float32Array;
      return x.reduce((most, v, j) => Math.max(most, Math.abs(v - y[j])), 0);
    }),
  );
}

describe('the page of npm run web, in Chromium', () => {
  it('trains one epoch on 4000 images with 2 workers; its accuracy, grid, confusion matrix and picture answers are those of the model it downloads', async () => {
    const { context, page } = await openPage();
    const settings: PageSettings = { model: 'mlp', workers: 2, epochs: 1, batchSize: 128, images: 4000, seed: 1 };
    const run = await trainOnPage(page, settings);
    // The Web Workers are ended with the run, as Piscina's threads are in Node.
    await expect.poll(() => page.workers().length, { timeout: 30_000 }).toBe(0);
    expect(run.samplesPerSecond).toHaveLength(1);
    expect(run.samplesPerSecond[0]).toBeGreaterThan(0);

    const model = await downloadModel(page);
    const predicted = predictionsOf(model, data.test);
    const correct = predicted.filter((p, i) => p === data.test.labels[i]).length;
    // The accuracy shown is the workers' evaluation; the downloaded model's own predictions, here in
    // Node, agree to an image (a near tie may round the other way on another backend).
    const shownAccuracy = (await page.textContent('#test-accuracy')) ?? '';
    expect(shownAccuracy).toMatch(/^[01]\.\d{4}$/);
    expect(Math.abs(Number(shownAccuracy) - correct / data.test.count)).toBeLessThanOrEqual(1.5e-4);
    expect(Math.abs(run.testAccuracy * data.test.count - correct)).toBeLessThanOrEqual(1);

    // Each cell's index, caption lines and caption colour, read in one call into the page (a call
    // per cell and field would be 300 round trips).
    const shown = await page.locator('#grid figure').evaluateAll((figures) =>
      figures.map((figure) => {
        const cell = figure as unknown as {
          getAttribute(name: string): string | null;
          querySelector(selector: string): unknown;
          querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }>;
        };
        return {
          index: Number(cell.getAttribute('data-index')),
          lines: Array.from(cell.querySelectorAll('figcaption span'), (span) => span.textContent ?? ''),
          color: getComputedStyle(cell.querySelector('figcaption')).color,
        };
      }),
    );
    expect(shown).toHaveLength(100);
    expect(new Set(shown.map((s) => s.index)).size).toBe(100);
    const red = shown.filter((s) => s.color === RED).map((s) => s.index);
    const wrong = shown.filter((s) => predicted[s.index] !== data.test.labels[s.index]).map((s) => s.index);
    expect(red).toEqual(wrong);
    expect(red.length).toBeGreaterThan(0);
    for (const { index, lines, color } of shown) {
      const label = data.test.labels[index];
      const answer = CLASSES[predicted[index]];
      expect(lines).toEqual(predicted[index] === label ? [answer] : [answer, `true: ${CLASSES[label]}`]);
      expect([INK, RED]).toContain(color);
    }

    const matrix = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
    predicted.forEach((p, i) => matrix[data.test.labels[i]][p]++);
    const rows = await page.locator('#confusion tbody tr').all();
    const counts = await Promise.all(rows.map(async (row) => (await row.locator('td').allTextContents()).map(Number)));
    expect(counts).toEqual(matrix);

    // Dark-blue trousers on off-white paper, 300x400, as the predict tests draw them; the page's
    // answer is the one npm run predict's preprocessing gives with the downloaded model.
    const dir = tempDir('fmnist-picture-');
    const canvas = createCanvas(300, 400);
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#f4f1ea';
    ctx.fillRect(0, 0, 300, 400);
    ctx.fillStyle = '#1c2a4a';
    ctx.fillRect(100, 40, 100, 50);
    ctx.fillRect(100, 80, 45, 290);
    ctx.fillRect(155, 80, 45, 290);
    const trousers = join(dir, 'trousers.jpg');
    writeFileSync(trousers, canvas.toBuffer('image/jpeg'));
    await page.setInputFiles('#upload', trousers);
    await page.locator('#top3[data-source="trousers.jpg"] li').nth(2).waitFor();
    const answers = await page.locator('#top3 li').allTextContents();
    expectTop3(answers, top3Of(model, await preprocessImage(trousers)));
    expect(answers[0]).toMatch(/^Trouser /);
    // A drawing: trousers in three strokes; its answer is the one the same pixels get in Node.
    await page.locator('#sketch').scrollIntoViewIfNeeded();
    const box = await page.locator('#sketch').boundingBox();
    if (box === null) throw new Error('the drawing area is not shown');
    const strokes = [
      [
        [90, 50],
        [190, 50],
      ],
      [
        [100, 50],
        [95, 250],
      ],
      [
        [180, 50],
        [185, 250],
      ],
    ];
    for (const [[x0, y0], [x1, y1]] of strokes) {
      await page.mouse.move(box.x + x0, box.y + y0);
      await page.mouse.down();
      await page.mouse.move(box.x + x1, box.y + y1, { steps: 10 });
      await page.mouse.up();
    }
    await page.click('#classify-drawing');
    await page.locator('#top3[data-source="the drawing"] li').nth(2).waitFor();
    const drawn = await page.locator('#top3 li').allTextContents();
    const sketch = join(dir, 'sketch.png');
    const dataUrl = await page
      .locator('#sketch')
      .evaluate((canvas) => (canvas as unknown as { toDataURL(): string }).toDataURL());
    writeFileSync(sketch, Buffer.from(dataUrl.replace(/^data:image\/png;base64,/, ''), 'base64'));
    expectTop3(drawn, top3Of(model, await preprocessImage(sketch)));

    // The README's picture of the page: refreshed only when asked, so that a test run leaves the repository as it was.
    const screenshot = join(dir, 'browser.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(
      readFileSync(screenshot)
        .subarray(0, 8)
        .equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10])),
    ).toBe(true);
    if (process.env.UPDATE_SCREENSHOT === '1') copyFileSync(screenshot, join(ROOT, 'docs', 'browser.png'));

    const notes = join(dir, 'notes.txt');
    writeFileSync(notes, 'not a picture\n');
    await page.setInputFiles('#upload', notes);
    await expect.poll(() => page.textContent('#picture-error')).toBe('notes.txt: not a PNG or JPEG image');
    expect(await page.locator('#top3 li').count()).toBe(0);
    await context.close();
  });

  it.each([
    { model: 'mlp', images: 2000, batchSize: 128, seed: 7 },
    { model: 'cnn', images: 512, batchSize: 64, seed: 3 },
  ] as const)(
    'gives the parameters Node gives, to 1e-5: $model, $images images, batch $batchSize, seed $seed, 2 workers, 1 epoch',
    async ({ model: preset, images, batchSize, seed }) => {
      const { context, page } = await openPage(subsetServer.url);
      await trainOnPage(page, { model: preset, workers: 2, epochs: 1, batchSize, images, seed });
      const inBrowser = await downloadModel(page);
      await context.close();
      const inNode = await train({
        data: { ...subset, train: firstImages(subset.train, images) },
        model: preset,
        workers: 2,
        epochs: 1,
        batchSize,
        seed,
      });
      expect(maxWeightDifference(inNode.model, inBrowser)).toBeLessThanOrEqual(1e-5);
      // And training moved them: two runs that trained nothing would agree too.
      const initial = initialParams(preset, seed);
      for (const trained of [flatWeights(inNode.model), flatWeights(inBrowser)]) {
        expect(trained).toHaveLength(initial.length);
        expect(trained.reduce((most, v, i) => Math.max(most, Math.abs(v - initial[i])), 0)).toBeGreaterThan(1e-3);
      }
    },
  );

  it.each([
    { button: '#stop', message: /^training was interrupted at epoch 1, step \d+$/ },
    { button: '#cancel', message: /^training was aborted$/ },
  ])('$button ends the run as in Node, with one line, and ends its workers', async ({ button, message }) => {
    const { context, page } = await openPage();
    await startTraining(page, { model: 'mlp', workers: 2, epochs: 5, batchSize: 32, images: 60000, seed: 1 });
    // Once a step has been reported, the run is under way.
    await page.locator('#progress-text', { hasText: /step [1-9]/ }).waitFor({ timeout: 120_000 });
    await page.click(button);
    await page.locator('#error:not([hidden])').waitFor({ timeout: 120_000 });
    expect(await page.textContent('#error')).toMatch(message);
    expect(await page.locator('#results').isHidden()).toBe(true);
    expect(await page.locator('#train').isEnabled()).toBe(true);
    await expect.poll(() => page.workers().length, { timeout: 30_000 }).toBe(0);
    await context.close();
  });

  it('says in one sentence that it needs cross-origin isolation when opened without it', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // The same server, with the two headers taken off the page itself.
    await page.route(server.url, async (route) => {
      const response = await route.fetch();
      const headers = { ...response.headers() };
      delete headers['cross-origin-opener-policy'];
      delete headers['cross-origin-embedder-policy'];
      await route.fulfill({ response, headers });
    });
    await page.goto(server.url);
    await expect
      .poll(() => page.textContent('#status'))
      .toBe(
        'This page is not cross-origin isolated, so it cannot share memory between its workers (SharedArrayBuffer): open it through npm run web, which sends the COOP and COEP headers it needs.',
      );
    expect(await page.locator('#train').isDisabled()).toBe(true);
    await context.close();
  });

  it("checks the dataset's files as the Node reader does: labels that do not match the images are one line", async () => {
    const dir = tinyDataset({ trainLabels: Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]) });
    const tiny = await servePage({
      pageDir: join(ROOT, 'dist', 'web'),
      dataFiles: await locateFashionMnist({ dir }),
      port: 0,
    });
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(tiny.url);
      await expect(pageReady(page)).rejects.toThrow(
        `the page could not start: ${tiny.url}data/train-labels-idx1-ubyte: 11 labels for the 12 images of ${tiny.url}data/train-images-idx3-ubyte; they must be the same split`,
      );
      await context.close();
    } finally {
      await tiny.close();
    }
  });
});

describe('your own pictures on the page, in Chromium', () => {
  /** Tinted Fashion-MNIST pictures (colour PNGs) in class folders, and a zip of the folder. */
  let folder: string;
  let zip: string;
  beforeAll(() => {
    const base = tempDir('fmnist-page-pictures-');
    folder = join(base, 'tinted');
    writePictureFolder(folder, { train: data.train, test: data.test } as Parameters<typeof writePictureFolder>[1], {
      format: 'png',
      train: 800,
      test: 300,
      tint: true,
    });
    zip = join(base, 'tinted.zip');
    writeFileSync(zip, zipBytes(filesUnder(base).map(({ path, bytes }) => ({ path, bytes }))));
  });

  it('a zip of the folder, decoded in the page: it trains to the parameters Node gives the same folder (to 1e-5), and shows its classes in colour', async () => {
    const { context, page } = await openPage();
    const line = await readPicturesOnPage(page, { zip });
    expect(line).toBe(
      `Ready: your pictures, tinted.zip: 10 classes (${CLASS_FOLDERS.join(', ')}); 800 training and 300 test images, ` +
        '28x28 (the most common size), colour (3 channels).',
    );
    const settings: PageSettings = { model: 'mlp', workers: 2, epochs: 1, batchSize: 64, images: 60000, seed: 2 };
    const run = await trainOnPage(page, settings);
    const inBrowser = await downloadModel(page);
    expect(inBrowser.inputs[0].shape).toEqual([null, 28, 28, 3]);
    expect(inBrowser.getUserDefinedMetadata()).toEqual({
      classNames: CLASS_FOLDERS,
      image: { height: 28, width: 28, channels: 3 },
      imageFolder: { resize: 'stretch' },
    });
    // The same folder, read by Node's decoder, trained in Node.
    const pictures = await loadImageFolder({ dir: folder, cacheDir: false });
    const inNode = await train({ data: pictures, model: 'mlp', workers: 2, epochs: 1, batchSize: 64, seed: 2 });
    expect(maxWeightDifference(inNode.model, inBrowser)).toBeLessThanOrEqual(1e-5);
    expect(run.testAccuracy).toBeCloseTo(inNode.testAccuracy, 3);
    // The results name the folder's classes; the confusion matrix's rows are its classes.
    expect(await page.locator('#confusion tbody th').allTextContents()).toEqual(CLASS_FOLDERS);
    const captions = await page.locator('#grid figcaption span').allTextContents();
    expect(captions.every((c) => CLASS_FOLDERS.includes(c.replace(/^true: /, '')))).toBe(true);
    // In colour: a grid cell's pixels are not all grey.
    const coloured = await page
      .locator('#grid canvas')
      .first()
      .evaluate((canvas) => {
        const c = canvas as unknown as {
          getContext(k: '2d'): { getImageData(...a: number[]): { data: Uint8ClampedArray } };
        };
        const { data: pixels } = c.getContext('2d').getImageData(0, 0, 28, 28);
        return pixels.some((v, i) => i % 4 === 0 && (v !== pixels[i + 1] || v !== pixels[i + 2]));
      });
    expect(coloured).toBe(true);
    // A picture uploaded is prepared as the training pictures were: the answer Node gives it.
    expect(await page.locator('#drawing').isHidden()).toBe(true);
    const picture = join(folder, 'test', CLASS_FOLDERS[7], readdirSync(join(folder, 'test', CLASS_FOLDERS[7]))[0]);
    await page.setInputFiles('#upload', picture);
    await page
      .locator(`#top3[data-source="${picture.split('/').at(-1)}"] li`)
      .nth(2)
      .waitFor();
    const pixels = await readPicture(picture, { height: 28, width: 28, channels: 3, resize: 'stretch' });
    const [best] = topClasses(inBrowser, pixels, { height: 28, width: 28, channels: 3 });
    expect(
      (await page.locator('#top3 li').first().textContent())?.startsWith(`${CLASS_FOLDERS[best.classIndex]} `),
    ).toBe(true);
    await context.close();
  });

  it('the folder itself, picked with the file chooser, read with other settings (14x21, padded, grey); a damaged picture in a zip is one line naming it', async () => {
    const { context, page } = await openPage();
    const line = await readPicturesOnPage(page, { folder, imageSize: '14x21', resize: 'pad', channels: '1' });
    expect(line).toBe(
      `Ready: your pictures, tinted: 10 classes (${CLASS_FOLDERS.join(', ')}); 800 training and 300 test images, ` +
        '14x21, grey (1 channel); 1100 of another size padded.',
    );
    const bad = join(tempDir(), 'bad.zip');
    writeFileSync(
      bad,
      zipBytes([
        ...filesUnder(folder)
          .filter(({ path }) => path.startsWith('train/0') || path.startsWith('train/9'))
          .map(({ path, bytes }) => ({ path: `mine/${path}`, bytes })),
        { path: `mine/train/${CLASS_FOLDERS[0]}/notes.png`, bytes: Buffer.from('a shopping list') },
      ]),
    );
    await expect(readPicturesOnPage(page, { zip: bad, validationSplit: '0.2' })).rejects.toThrow(
      `bad.zip/mine/train/${CLASS_FOLDERS[0]}/notes.png: not a PNG, JPEG or WebP image`,
    );
    await context.close();
  });
});
