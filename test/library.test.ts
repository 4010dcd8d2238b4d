import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSession } from '../dist/src/coordinator/node-platform.js';
import {
  AbortError,
  DataError,
  type Dataset,
  InterruptedError,
  loadFashionMnist,
  NonFiniteError,
  OptionError,
  readCheckpoint,
  train,
} from '../dist/src/index.js';
import { TIMING_TENSORS, TIMING_WORDS } from '../dist/src/protocol.js';
import { DEBIAN_DIR, settledOsThreads, tempDir } from './helpers.js';

let fashion: Dataset;

beforeAll(async () => {
  fashion = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
});

/**
 * Counts the worker threads this process starts (Node emits `worker` on `process` for each, a tick
 * after its creation) until `stop()`.
 */
function countWorkersStarted(): { stop: () => Promise<number> } {
  let count = 0;
  const onWorker = () => count++;
  process.on('worker', onWorker);
  return {
    stop: async () => {
      await new Promise((resolve) => setImmediate(resolve));
      process.off('worker', onWorker);
      return count;
    },
  };
}

/** The first `count` training images of Fashion-MNIST, and its first 2,000 test images (each epoch scores them). */
function slice(data: Dataset, count: number): Dataset {
  const pixels = data.height * data.width;
  const tests = 2000;
  return {
    ...data,
    train: {
      images: data.train.images.subarray(0, count * pixels),
      labels: data.train.labels.subarray(0, count),
      count,
    },
    test: {
      images: data.test.images.subarray(0, tests * pixels),
      labels: data.test.labels.subarray(0, tests),
      count: tests,
    },
  };
}

describe('train() as a library', () => {
  it('trains on any dense classification data: float32 pixels, 3 classes, 4x4 images', async () => {
    // Class c is an image whose pixels are all near c / 2: easy to learn, and not Fashion-MNIST.
    const make = (count: number, seed: number) => {
      const labels = Uint8Array.from({ length: count }, (_, i) => (i * 7 + seed) % 3);
      const images = Float32Array.from(
        { length: count * 16 },
        (_, i) => labels[Math.floor(i / 16)] / 2 + ((i * 13) % 7) / 70,
      );
      return { images, labels, count };
    };
    const data: Dataset = {
      train: make(300, 1),
      test: make(60, 2),
      height: 4,
      width: 4,
      classNames: ['low', 'middle', 'high'],
    };
    const result = await train({ data, workers: 2, epochs: 5, batchSize: 30, learningRate: 0.01 });
    expect(result.testAccuracy).toBe(1);
    expect(result.model.inputs[0].shape).toEqual([null, 4, 4]);
    expect(result.model.outputs[0].shape).toEqual([null, 3]);
  });

  it('reports epochs, log lines, and batch progress with each step at most once and in order, however slow the steps', async () => {
    const epochs: number[] = [];
    const progress: { epoch: number; step: number; steps: number }[] = [];
    const lines: string[] = [];
    await train({
      data: slice(fashion, 4096),
      workers: 2,
      epochs: 2,
      batchSize: 32,
      // Shorter than any step: a timer that reported on every tick would repeat steps.
      progressIntervalMs: 1,
      onEpochEnd: (log) => void epochs.push(log.epoch),
      onBatchEnd: ({ epoch, step, steps }) => void progress.push({ epoch, step, steps }),
      onLog: (line) => void lines.push(line),
    });
    expect(epochs).toEqual([1, 2]);
    for (const epoch of [1, 2]) {
      const steps = progress.filter((p) => p.epoch === epoch);
      expect(steps.length).toBeGreaterThan(0);
      steps.forEach((p, i) => {
        expect(p.steps).toBe(128);
        if (i > 0) expect(p.step).toBeGreaterThan(steps[i - 1].step);
      });
      expect(steps.at(-1)?.step).toBe(128);
    }
    expect(progress.map((p) => p.epoch)).toEqual([...progress.map((p) => p.epoch)].sort());
    expect(lines[0]).toMatch(
      /^Training on 4096 images with 2 workers: model flatten,dense:128,dense:10, global batch 32/,
    );
    expect(lines.at(-2)).toMatch(/^Test accuracy: 0\.\d{4}$/);
  });

  it('stops within a step or two when aborted mid-epoch: AbortError, no worker thread left', async () => {
    const threadsBefore = await settledOsThreads();
    const started = countWorkersStarted();
    const controller = new AbortController();
    let stepAtAbort = -1;
    let lastStep = -1;
    const run = train({
      data: fashion,
      workers: 2,
      epochs: 1,
      batchSize: 32,
      signal: controller.signal,
      // Reports as often as steps end: had the workers gone on after the abort, to the end of the
      // chunk (200 steps) or of the epoch (1875), the reports would show it.
      progressIntervalMs: 1,
      onBatchEnd: (progress) => {
        lastStep = progress.step;
        if (progress.step > 50 && stepAtAbort < 0) {
          stepAtAbort = progress.step;
          controller.abort();
        }
      },
    });
    await expect(run).rejects.toThrow(AbortError);
    expect(await started.stop()).toBe(2);
    expect(stepAtAbort).toBeGreaterThan(50);
    // The step in progress at the abort may end, and so may any that end while this thread is
    // descheduled between the report's read of the counter and the abort (on a loaded machine): a
    // few steps, never the rest of the chunk. The next test bounds it exactly, at the counter.
    expect(lastStep - stepAtAbort).toBeLessThanOrEqual(5);
    expect(await settledOsThreads(threadsBefore)).toBe(threadsBefore);
  });

  it('an abort stops the workers within a step of the steps-done counter, and leaves none of their tensors behind', async () => {
    const session = createSession(fashion, { workers: 2, batchSize: 32 });
    // Each worker's live tensors at the end of its last step (what resources.test.ts counts).
    const tensors = () => [0, 1].map((rank) => session.shared.timings[rank * TIMING_WORDS + TIMING_TENSORS]);
    try {
      session.beginEpoch();
      await session.runSteps(0, 10);
      const before = tensors();
      expect(before.every((n) => n > 0)).toBe(true);
      const controller = new AbortController();
      let doneAtAbort = -1;
      const poll = setInterval(() => {
        if (session.stepsDone() < 50) return;
        clearInterval(poll);
        controller.abort();
        // Read after the abort: from here on, only the step in progress can still end.
        doneAtAbort = session.stepsDone();
      }, 1);
      const run = session.runSteps(10, session.stepsPerEpoch, { signal: controller.signal });
      await expect(run).rejects.toThrow(AbortError);
      clearInterval(poll);
      expect(doneAtAbort).toBeGreaterThanOrEqual(50);
      expect(session.stepsDone() - doneAtAbort).toBeLessThanOrEqual(1);
      // The same workers go on (resume clears the stop): the aborted step left no tensor in them.
      session.resume(session.state());
      const from = session.stepsDone();
      await session.runSteps(from, from + 10);
      expect(tensors()).toEqual(before);
    } finally {
      await session.close();
    }
  });

  it('interrupt: stops after the step in progress with InterruptedError naming the epoch, the step and the checkpoint', async () => {
    const dir = tempDir();
    const error = await train({
      data: slice(fashion, 2048),
      workers: 2,
      epochs: 2,
      batchSize: 32,
      checkpointDir: dir,
      // Already aborted: the first step runs, and is the last.
      interrupt: AbortSignal.abort(),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InterruptedError);
    const { epoch, step, checkpoint, message } = error as InterruptedError;
    const file = join(dir, 'checkpoint.bin');
    expect({ epoch, step, checkpoint }).toEqual({ epoch: 1, step: 1, checkpoint: file });
    expect(message).toBe(`training was interrupted at epoch 1, step 1; checkpoint written to ${file}`);
    const saved = await readCheckpoint(dir);
    expect({ epochsDone: saved.epochsDone, stepsDone: saved.stepsDone, adamSteps: saved.adam.steps }).toEqual({
      epochsDone: 0,
      stepsDone: 1,
      adamSteps: 1,
    });
  });

  it('stops with NonFiniteError naming the epoch and step when the loss becomes NaN, and returns no model', async () => {
    // Float32 images with one NaN pixel in training image 700: with batch 64 and no shuffle of
    // consequence (any order), the step that draws it fails; the epoch is the first.
    const count = 2048;
    const images = Float32Array.from(fashion.train.images.subarray(0, count * 784), (v) => v / 255);
    images[700 * 784 + 300] = NaN;
    const data = { ...fashion, train: { images, labels: fashion.train.labels.subarray(0, count), count } };
    const error = await train({ data, workers: 2, epochs: 2, batchSize: 64 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NonFiniteError);
    expect((error as Error).message).toMatch(
      /^training diverged: the loss or its gradient became NaN or infinite at epoch 1, step ([1-9]|[12]\d|3[0-2]); no model was saved\. Lower the learning rate \(--lr\)$/,
    );
  });

  it('rejects invalid options and data with a typed error naming the problem, before any worker starts', async () => {
    const threadsBefore = await settledOsThreads();
    const started = countWorkersStarted();
    const fileInTmp = join(tempDir(), 'a-file');
    writeFileSync(fileInTmp, '');
    const cases: [Parameters<typeof train>[0], typeof OptionError | typeof DataError, RegExp][] = [
      [{ workers: -1 }, OptionError, /^workers must be an integer between 1 and 64, got -1$/],
      [{ batchSize: 0.5 }, OptionError, /^batchSize must be an integer between 1 and 1000000, got 0.5$/],
      [{ hidden: [128, 0] }, OptionError, /^hidden must be a list of up to 16 layer widths/],
      [
        { data: { ...fashion, train: { ...fashion.train, count: 59_999 } } },
        DataError,
        /^training data: 60000 labels but count is 59999/,
      ],
      [
        { data: { ...fashion, classNames: ['a', 'b'] } },
        DataError,
        /^training data: label \d at index \d+ is outside the 2 classes 0-1$/,
      ],
      [
        { data: { ...fashion, height: 27 } },
        DataError,
        /^training data: 47040000 pixel values for 60000 images of 756 values/,
      ],
      [
        { data: fashion, checkpointDir: join(tmpdir(), 'no-such-dir', 'checkpoints') },
        OptionError,
        /^checkpointDir ".*checkpoints" does not exist; create it first$/,
      ],
      [{ data: fashion, checkpointDir: fileInTmp }, OptionError, /^checkpointDir ".*" is a file, not a directory$/],
    ];
    for (const [options, Class, message] of cases) {
      const error = await train(options).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Class);
      expect((error as Error).message).toMatch(message);
    }
    await expect(train({ signal: AbortSignal.abort() })).rejects.toThrow(AbortError);
    // Not one worker was started, not even for a moment.
    expect(await started.stop()).toBe(0);
    expect(await settledOsThreads(threadsBefore)).toBe(threadsBefore);
  });
});
