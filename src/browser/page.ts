/**
 * The page: loads Fashion-MNIST from the server (or reads a folder of your own pictures, zipped or
 * picked), trains with the settings of its form on Web Workers (trainInBrowser: the trainer of
 * `npm run train`), and shows the run as `npm run train`'s pictures do. The numbers (which images the grid shows, which are wrong, the confusion counts, the
 * top 3 of a picture) come from the code the Node report uses; only the drawing is the page's own.
 */
import type * as tf from '@tensorflow/tfjs';
import type { BatchProgress, EpochLog } from '../coordinator/config.js';
import { parseAugment } from '../data/augment.js';
import { channelsOf, type Dataset, type ResizeMode, type Split } from '../data/dataset.js';
import { cellColors, classify } from '../report/classification.js';
import { MISTAKE_RED, predictClasses, predictionGrid, topClasses } from '../report/predictions.js';
import { learningCurvesSvg } from './curves.js';
import { fetchFashionMnist } from './data.js';
import { drawingToDatasetImage, pictureToDatasetImage } from './picture.js';
import { loadPictures, type PagePictures, pictureForModel, type PictureSource } from './pictures.js';
import { trainInBrowser } from './platform.js';
import { startWasmBackend } from './tfjs.js';

/** Where the server (web/server.ts) serves the dataset's four files. */
const DATA_PATH = '/data/';
const INK = '#222222';

function element<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

const form = element<HTMLFormElement>('settings');
const trainButton = element<HTMLButtonElement>('train');
const stopButton = element<HTMLButtonElement>('stop');
const cancelButton = element<HTMLButtonElement>('cancel');
const status = element<HTMLParagraphElement>('status');
const errorLine = element<HTMLParagraphElement>('error');
const progressBar = element<HTMLProgressElement>('progress');
const progressText = element<HTMLParagraphElement>('progress-text');

let fashion: Dataset | undefined;
let pictures: PagePictures | undefined;
let model: tf.LayersModel | undefined;
/** The data the model was trained on: what the results, and a picture's answer, are about. */
let trainedOn: Dataset | undefined;

const dataForm = element<HTMLFormElement>('data');
const picturesStatus = element<HTMLParagraphElement>('pictures-status');
const picturesError = element<HTMLParagraphElement>('pictures-error');

/** The data the Train button trains on: Fashion-MNIST, or your pictures once read. */
function chosenData(): Dataset | undefined {
  const source = (dataForm.elements.namedItem('source') as RadioNodeList).value;
  return source === 'pictures' ? pictures?.data : fashion;
}

function showError(line: HTMLElement, error: unknown): void {
  line.textContent = error instanceof Error ? error.message : String(error);
  line.hidden = false;
}

async function start(): Promise<void> {
  if (!crossOriginIsolated) {
    status.textContent =
      'This page is not cross-origin isolated, so it cannot share memory between its workers (SharedArrayBuffer): open it through npm run web, which sends the COOP and COEP headers it needs.';
    return;
  }
  (form.elements.namedItem('workers') as HTMLInputElement).value = String(navigator.hardwareConcurrency);
  try {
    await startWasmBackend();
    fashion = await fetchFashionMnist(new URL(DATA_PATH, location.href), ({ file, receivedBytes, totalBytes }) => {
      const of = totalBytes === undefined ? '' : ` of ${megabytes(totalBytes)}`;
      status.textContent = `Loading Fashion-MNIST: ${file}, ${megabytes(receivedBytes)}${of}`;
    });
  } catch (error) {
    status.textContent = 'The page could not start.';
    showError(errorLine, error);
    return;
  }
  status.textContent = `Ready: Fashion-MNIST, ${fashion.train.count} training and ${fashion.test.count} test images; ${navigator.hardwareConcurrency} cores.`;
  trainButton.disabled = false;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The first `count` images of a split, without a copy (still in shared memory). */
function firstImages(split: Split, count: number, pixels: number): Split {
  const n = Math.min(count, split.count);
  return { images: split.images.subarray(0, n * pixels), labels: split.labels.subarray(0, n), count: n };
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void train();
});

async function train(): Promise<void> {
  const data = chosenData();
  if (data === undefined) return;
  const value = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value;
  const number = (name: string) => Number(value(name));
  const epochs = number('epochs');
  // Your pictures come class by class: all of them train, where Fashion-MNIST's first N may.
  const trainSet = data === fashion ? firstImages(data.train, number('images'), data.height * data.width) : data.train;
  const signal = new AbortController();
  const interrupt = new AbortController();
  stopButton.onclick = () => {
    interrupt.abort();
    stopButton.disabled = true;
    progressText.textContent += ' (stopping after this step)';
  };
  cancelButton.onclick = () => signal.abort();
  errorLine.hidden = true;
  element('results').hidden = true;
  element('curves-section').hidden = true;
  element('curves').replaceChildren();
  const epochRows = element<HTMLTableElement>('epochs').tBodies[0];
  epochRows.replaceChildren();
  model?.dispose();
  model = undefined;
  trainedOn = undefined;
  trainButton.disabled = true;
  stopButton.disabled = false;
  cancelButton.disabled = false;
  progressBar.value = 0;
  progressText.textContent = 'Starting the workers…';
  const history: EpochLog[] = [];
  let last: BatchProgress | undefined;
  try {
    const result = await trainInBrowser({
      data: { ...data, train: trainSet },
      model: value('model'),
      augment: value('augment') === '' ? undefined : parseAugment(value('augment'), 'augmentation'),
      workers: number('workers'),
      epochs,
      batchSize: number('batchSize'),
      seed: number('seed'),
      signal: signal.signal,
      interrupt: interrupt.signal,
      onBatchEnd: (progress) => {
        last = progress;
        progressBar.max = progress.steps * epochs;
        progressBar.value = (progress.epoch - 1) * progress.steps + progress.step;
        progressText.textContent =
          `Epoch ${progress.epoch}/${epochs}: step ${progress.step}/${progress.steps}, ` +
          `loss ${progress.loss.toFixed(4)}, accuracy ${progress.accuracy.toFixed(4)}` +
          (progress.step === progress.steps ? ', evaluating the test images…' : '');
      },
      onEpochEnd: (log) => {
        history.push(log);
        // The training part of the epoch: its last progress, taken before the evaluation.
        const samplesPerSecond = last === undefined ? NaN : trainSet.count / last.seconds;
        addEpochRow(epochRows, log, samplesPerSecond);
        element('curves').innerHTML = learningCurvesSvg(history);
        element('curves-section').hidden = false;
      },
    });
    model = result.model;
    trainedOn = data;
    progressText.textContent = `Trained ${epochs} epoch${epochs > 1 ? 's' : ''} in ${result.wallSeconds.toFixed(1)} s; scoring the test images…`;
    // Lets the line above show before the main thread is busy predicting.
    await new Promise((resolve) => setTimeout(resolve, 0));
    showResults(result.model, data, result.testAccuracy, result.config.seed);
    progressText.textContent = `Trained ${epochs} epoch${epochs > 1 ? 's' : ''} in ${result.wallSeconds.toFixed(1)} s.`;
  } catch (error) {
    progressText.textContent = 'Training stopped.';
    showError(errorLine, error);
  } finally {
    trainButton.disabled = false;
    stopButton.disabled = true;
    cancelButton.disabled = true;
  }
}

function addEpochRow(rows: HTMLTableSectionElement, log: EpochLog, samplesPerSecond: number): void {
  const row = rows.insertRow();
  row.dataset.samplesPerSecond = String(samplesPerSecond);
  const cells = [
    String(log.epoch),
    log.loss.toFixed(4),
    log.accuracy.toFixed(4),
    log.testLoss.toFixed(4),
    log.testAccuracy.toFixed(4),
    log.seconds.toFixed(2),
    Math.round(samplesPerSecond).toLocaleString('en'),
  ];
  for (const text of cells) row.insertCell().textContent = text;
}

function showResults(trained: tf.LayersModel, dataset: Dataset, testAccuracy: number, seed: number): void {
  const { test, height, width, classNames } = dataset;
  const channels = channelsOf(dataset);
  const accuracy = element<HTMLOutputElement>('test-accuracy');
  accuracy.value = testAccuracy.toFixed(4);
  accuracy.dataset.value = String(testAccuracy);
  const predicted = predictClasses(trained, test, height, width, channels);
  const grid = predictionGrid({ predicted, test, pixels: height * width * channels, classNames, seed });
  showGrid(grid, { width, height, channels, ink: dataset === fashion });
  showConfusion(classify(predicted, test.labels, classNames.length), classNames);
  element('top3').replaceChildren();
  element('picture-error').hidden = true;
  // The drawing is of a garment: for Fashion-MNIST only. A picture to upload is for any data.
  element('drawing').hidden = dataset !== fashion;
  element('results').hidden = false;
}

/** How a grid's images are drawn: their size, channels, and grey as ink on paper (Fashion-MNIST) or as it is. */
interface ImageLook {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly ink: boolean;
}

function showGrid(grid: ReturnType<typeof predictionGrid>, look: ImageLook): void {
  const { width, height } = look;
  const cells = grid.items.map((item, i) => {
    const figure = document.createElement('figure');
    figure.dataset.index = String(grid.indices[i]);
    if (item.red) figure.classList.add('mistake');
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `test image ${grid.indices[i]}`);
    drawPixels(canvas, item.pixels, look);
    const caption = document.createElement('figcaption');
    caption.style.color = item.red ? MISTAKE_RED : INK;
    caption.replaceChildren(
      ...item.caption.map((line) => Object.assign(document.createElement('span'), { textContent: line })),
    );
    figure.replaceChildren(canvas, caption);
    return figure;
  });
  element('grid').replaceChildren(...cells);
}

/**
 * An image (uint8, height x width x channels) on a canvas of its size: grey as ink, in the
 * tutorial's `plt.cm.binary` colours (background white, the garment dark), or as it is.
 */
function drawPixels(canvas: HTMLCanvasElement, pixels: Uint8Array, look: ImageLook): void {
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
  const image = ctx.createImageData(canvas.width, canvas.height);
  const { channels } = look;
  for (let i = 0; i < canvas.width * canvas.height; i++) {
    for (let c = 0; c < 3; c++) {
      const v = pixels[i * channels + (channels === 1 ? 0 : c)];
      image.data[4 * i + c] = look.ink && channels === 1 ? 255 - v : v;
    }
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function showConfusion(result: ReturnType<typeof classify>, classNames: readonly string[]): void {
  const table = element<HTMLTableElement>('confusion');
  const images = result.perClass.reduce((sum, c) => sum + c.support, 0);
  const caption = document.createElement('caption');
  caption.textContent = `On the ${images} test images (accuracy ${result.accuracy.toFixed(4)}): true class down, predicted class across; shaded by the share of the row`;
  const head = document.createElement('tr');
  head.append(document.createElement('td'));
  for (const name of classNames) {
    head.append(Object.assign(document.createElement('th'), { scope: 'col', textContent: name }));
  }
  const rows = result.matrix.map((counts, t) => {
    const row = document.createElement('tr');
    row.append(Object.assign(document.createElement('th'), { scope: 'row', textContent: classNames[t] }));
    const support = Math.max(
      1,
      counts.reduce((a, b) => a + b, 0),
    );
    for (const count of counts) {
      const cell = document.createElement('td');
      const colors = cellColors(count / support);
      cell.style.background = colors.background;
      cell.style.color = colors.text;
      cell.textContent = String(count);
      row.append(cell);
    }
    return row;
  });
  const thead = document.createElement('thead');
  thead.append(head);
  const tbody = document.createElement('tbody');
  tbody.append(...rows);
  table.replaceChildren(caption, thead, tbody);
}

element<HTMLButtonElement>('download').addEventListener('click', () => {
  // Two files, model.json and model.weights.bin: what tf.loadLayersModel and loadModel read.
  void model?.save('downloads://model').catch((error: unknown) => showError(errorLine, error));
});

/** The top 3 classes of a picture; the list says which picture (`source`) it is for. */
function showTop3(pixels: Uint8Array, source: string): void {
  if (model === undefined || trainedOn === undefined) return;
  const { height, width } = trainedOn;
  const channels = channelsOf(trainedOn);
  const seen = element<HTMLCanvasElement>('seen');
  seen.width = width;
  seen.height = height;
  drawPixels(seen, pixels, { width, height, channels, ink: false });
  const classNames = trainedOn.classNames;
  const list = element('top3');
  list.dataset.source = source;
  list.replaceChildren(
    ...topClasses(model, pixels, { height, width, channels }).map(({ classIndex, probability }) => {
      const item = document.createElement('li');
      item.dataset.classIndex = String(classIndex);
      item.textContent = `${classNames[classIndex]} ${(100 * probability).toFixed(1)}%`;
      return item;
    }),
  );
  element('picture-error').hidden = true;
}

function pictureFailed(error: unknown): void {
  element('top3').replaceChildren();
  delete element('top3').dataset.source;
  showError(element('picture-error'), error);
}

const upload = element<HTMLInputElement>('upload');
upload.addEventListener('change', () => {
  const file = upload.files?.[0];
  if (file === undefined || trainedOn === undefined) return;
  // A model trained on your pictures sees a picture as they were made; one on Fashion-MNIST, as
  // that dataset's images were made from photos.
  const folder = trainedOn.imageFolder;
  const prepared =
    folder === undefined
      ? pictureToDatasetImage(file, file.name)
      : pictureForModel(file, file.name, {
          height: trainedOn.height,
          width: trainedOn.width,
          channels: channelsOf(trainedOn) as 1 | 3,
          resize: folder.resize,
        });
  prepared.then((pixels) => showTop3(pixels, file.name), pictureFailed);
});

const sketch = element<HTMLCanvasElement>('sketch');
const pen = sketch.getContext('2d') as CanvasRenderingContext2D;
function clearSketch(): void {
  pen.fillStyle = '#ffffff';
  pen.fillRect(0, 0, sketch.width, sketch.height);
}
clearSketch();
let drawing = false;
sketch.addEventListener('pointerdown', (event) => {
  drawing = true;
  sketch.setPointerCapture(event.pointerId);
  pen.beginPath();
  pen.moveTo(event.offsetX, event.offsetY);
});
sketch.addEventListener('pointermove', (event) => {
  if (!drawing) return;
  pen.lineTo(event.offsetX, event.offsetY);
  pen.strokeStyle = INK;
  pen.lineWidth = 16;
  pen.lineCap = 'round';
  pen.lineJoin = 'round';
  pen.stroke();
});
sketch.addEventListener('pointerup', () => (drawing = false));
element('clear-drawing').addEventListener('click', clearSketch);
element('classify-drawing').addEventListener('click', () => {
  try {
    showTop3(drawingToDatasetImage(sketch), 'the drawing');
  } catch (error) {
    pictureFailed(error);
  }
});

/** Reads the picked pictures with the data form's settings; picking again, or changing a setting, reads them again. */
let picked: PictureSource | undefined;
let reading = 0;
async function readPictures(): Promise<void> {
  if (picked === undefined) return;
  const reads = ++reading;
  const value = (name: string) => (dataForm.elements.namedItem(name) as HTMLInputElement).value;
  const size = /^(\d+)(?:x(\d+))?$/.exec(value('imageSize').trim());
  const split = value('validationSplit');
  picturesError.hidden = true;
  trainButton.disabled = true;
  picturesStatus.textContent = 'Reading the pictures…';
  try {
    const read = await loadPictures(picked, {
      imageSize: size === null ? undefined : { height: Number(size[1]), width: Number(size[2] ?? size[1]) },
      channels: value('channels') === '' ? undefined : (Number(value('channels')) as 1 | 3),
      resize: value('resize') as ResizeMode,
      validationSplit: split === '' ? undefined : Number(split),
      seed: Number((form.elements.namedItem('seed') as HTMLInputElement).value),
      onProgress: ({ phase, done, total }) => {
        if (reads === reading) {
          picturesStatus.textContent = `${phase === 'sizes' ? 'Reading their sizes' : 'Decoding them'}: ${done}/${total}`;
        }
      },
    });
    if (reads !== reading) return;
    pictures = read;
    const pictureSource = dataForm.querySelector<HTMLInputElement>(
      'input[name=source][value=pictures]',
    ) as HTMLInputElement;
    pictureSource.disabled = false;
    pictureSource.checked = true;
    picturesStatus.textContent = describePictures(read);
  } catch (error) {
    if (reads !== reading) return;
    pictures = undefined;
    picturesStatus.textContent = 'The pictures could not be read.';
    showError(picturesError, error);
    (dataForm.querySelector('input[name=source][value=fashion]') as HTMLInputElement).checked = true;
  } finally {
    if (reads === reading) trainButton.disabled = fashion === undefined && pictures === undefined;
  }
}

/** The line that says what was read, as npm run train's first line does. */
function describePictures({ data: read, name, set, ignored }: PagePictures): string {
  const kind = read.channels === 3 ? 'colour (3 channels)' : 'grey (1 channel)';
  const size = `${read.height}x${read.width}${set.sizeFrom === 'most common' ? ' (the most common size)' : ''}`;
  const held = read.imageFolder?.validationSplit === undefined ? 'test' : 'held-out';
  const notes = [
    set.resized > 0
      ? `${set.resized} of another size ${read.imageFolder?.resize === 'pad' ? 'padded' : 'stretched'}`
      : '',
    ignored.length > 0 ? `${ignored.length} files that are not pictures ignored` : '',
  ].filter((note) => note !== '');
  return (
    `Ready: your pictures, ${name}: ${read.classNames.length} classes (${read.classNames.join(', ')}); ` +
    `${read.train.count} training and ${read.test.count} ${held} images, ${size}, ${kind}` +
    (notes.length > 0 ? `; ${notes.join('; ')}.` : '.')
  );
}

const zipInput = element<HTMLInputElement>('pictures-zip');
zipInput.addEventListener('change', () => {
  const zip = zipInput.files?.[0];
  if (zip === undefined) return;
  picked = { zip };
  void readPictures();
});
const folderInput = element<HTMLInputElement>('pictures-folder');
folderInput.addEventListener('change', () => {
  const files = [...(folderInput.files ?? [])];
  if (files.length === 0) return;
  picked = { files };
  void readPictures();
});
for (const name of ['imageSize', 'channels', 'resize', 'validationSplit']) {
  (dataForm.elements.namedItem(name) as HTMLElement).addEventListener('change', () => void readPictures());
}
dataForm.addEventListener('submit', (event) => event.preventDefault());

void start();
