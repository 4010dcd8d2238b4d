/**
 * The page: loads Fashion-MNIST from the server, trains with the settings of its form on Web
 * Workers (trainInBrowser: the trainer of `npm run train`), and shows the run as `npm run train`'s
 * pictures do. The numbers (which images the grid shows, which are wrong, the confusion counts, the
 * top 3 of a picture) come from the code the Node report uses; only the drawing is the page's own.
 */
import type * as tf from '@tensorflow/tfjs';
import type { BatchProgress, EpochLog } from '../coordinator/config.js';
import type { Dataset, Split } from '../data/dataset.js';
import { cellColors, classify } from '../report/classification.js';
import { MISTAKE_RED, predictClasses, predictionGrid, topClasses } from '../report/predictions.js';
import { learningCurvesSvg } from './curves.js';
import { fetchFashionMnist } from './data.js';
import { drawingToDatasetImage, pictureToDatasetImage } from './picture.js';
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

let data: Dataset | undefined;
let model: tf.LayersModel | undefined;

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
    data = await fetchFashionMnist(new URL(DATA_PATH, location.href), ({ file, receivedBytes, totalBytes }) => {
      const of = totalBytes === undefined ? '' : ` of ${megabytes(totalBytes)}`;
      status.textContent = `Loading Fashion-MNIST: ${file}, ${megabytes(receivedBytes)}${of}`;
    });
  } catch (error) {
    status.textContent = 'The page could not start.';
    showError(errorLine, error);
    return;
  }
  status.textContent = `Ready: Fashion-MNIST, ${data.train.count} training and ${data.test.count} test images; ${navigator.hardwareConcurrency} cores.`;
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
  if (data === undefined) return;
  const value = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value;
  const number = (name: string) => Number(value(name));
  const epochs = number('epochs');
  const trainSet = firstImages(data.train, number('images'), data.height * data.width);
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
  const accuracy = element<HTMLOutputElement>('test-accuracy');
  accuracy.value = testAccuracy.toFixed(4);
  accuracy.dataset.value = String(testAccuracy);
  const predicted = predictClasses(trained, test, height, width);
  showGrid(predictionGrid({ predicted, test, pixels: height * width, classNames, seed }), width, height);
  showConfusion(classify(predicted, test.labels, classNames.length), classNames);
  element('top3').replaceChildren();
  element('picture-error').hidden = true;
  element('results').hidden = false;
}

function showGrid(grid: ReturnType<typeof predictionGrid>, width: number, height: number): void {
  const cells = grid.items.map((item, i) => {
    const figure = document.createElement('figure');
    figure.dataset.index = String(grid.indices[i]);
    if (item.red) figure.classList.add('mistake');
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `test image ${grid.indices[i]}`);
    drawGrey(canvas, item.pixels);
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

/** A grey image (uint8, 0 = background) in the tutorial's `plt.cm.binary` colours: background white, the garment dark. */
function drawGrey(canvas: HTMLCanvasElement, pixels: Uint8Array): void {
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
  const image = ctx.createImageData(canvas.width, canvas.height);
  pixels.forEach((v, i) => {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = 255 - v;
    image.data[4 * i + 3] = 255;
  });
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
  if (model === undefined || data === undefined) return;
  const seen = element<HTMLCanvasElement>('seen');
  const ctx = seen.getContext('2d') as CanvasRenderingContext2D;
  const image = ctx.createImageData(28, 28);
  pixels.forEach((v, i) => {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  });
  ctx.putImageData(image, 0, 0);
  const classNames = data.classNames;
  const list = element('top3');
  list.dataset.source = source;
  list.replaceChildren(
    ...topClasses(model, pixels, { height: 28, width: 28 }).map(({ classIndex, probability }) => {
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
  if (file === undefined) return;
  pictureToDatasetImage(file, file.name).then((pixels) => showTop3(pixels, file.name), pictureFailed);
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

void start();
