import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  AbortError,
  createTrainerThread,
  type Dataset,
  InterruptedError,
  loadFashionMnist,
  NonFiniteError,
  OptionError,
  WorkerError,
} from '../dist/src/index.js';
import { createTrainerThreadWithFaults } from '../dist/src/thread/trainer-thread.js';
import { blockUntil, DEBIAN_DIR, settledOsThreads, tempDir } from './helpers.js';

let data: Dataset;

beforeAll(async () => {
  data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
});

describe('createTrainerThread', () => {
  it("trains off the caller's thread: with the caller's thread blocked, an epoch ends and is checkpointed; callbacks arrive, the model comes back", async () => {
    const threadsBefore = await settledOsThreads();
    const trainer = await createTrainerThread();
    const checkpoint = join(tempDir(), 'checkpoint.bin');
    let writtenWhileBlocked: boolean | undefined;
    const epochs: number[] = [];
    try {
      // The first 12,000 training images: 188 steps an epoch, time enough for a blocked caller to
      // show; two epochs of them score 0.837 on the whole test set, over the 0.8 checked.
      const count = 12_000;
      const train = {
        images: data.train.images.subarray(0, count * 784),
        labels: data.train.labels.subarray(0, count),
        count,
      };
      const result = await trainer.train({
        data: { ...data, train },
        workers: 2,
        epochs: 2,
        batchSize: 64,
        checkpointDir: dirname(checkpoint),
        checkpointEvery: 1,
        onBatchEnd: () => {
          // Epoch 1 is under way. Block the caller's thread until its checkpoint is written: a
          // coordinator on this thread could not get there (the test would fail after the bound).
          writtenWhileBlocked ??= blockUntil(() => existsSync(checkpoint), 120_000);
        },
        onEpochEnd: (log) => void epochs.push(log.epoch),
      });
      expect(writtenWhileBlocked).toBe(true);
      expect(epochs).toEqual([1, 2]);
      expect(result.testAccuracy).toBeGreaterThan(0.8);
      expect(result.model.countParams()).toBe(101_770);
    } finally {
      await trainer.close();
    }
    expect(await settledOsThreads(threadsBefore)).toBe(threadsBefore);
  });

  it("rebuilds typed errors on the caller's side, InterruptedError with its fields, and ends the thread on abort", async () => {
    const threadsBefore = await settledOsThreads();
    const trainer = await createTrainerThread();
    const invalid = await trainer.train({ data, workers: 0 }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(OptionError);
    expect((invalid as Error).message).toBe('workers must be an integer between 1 and 64, got 0');

    const dir = tempDir();
    const interrupted = await trainer
      .train({ data, workers: 2, epochs: 2, checkpointDir: dir, interrupt: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect(interrupted).toBeInstanceOf(InterruptedError);
    const { epoch, step, checkpoint, message } = interrupted as InterruptedError;
    expect({ epoch, step, checkpoint }).toEqual({ epoch: 1, step: 1, checkpoint: join(dir, 'checkpoint.bin') });
    expect(message).toBe(`training was interrupted at epoch 1, step 1; checkpoint written to ${checkpoint}`);

    // Interrupted after the call: the signal's listener carries it to the thread, which sees it
    // before the first step ends (the call's message comes first, and its workers are still starting).
    const later = new AbortController();
    const running = trainer.train({ data, workers: 2, epochs: 2, checkpointDir: dir, interrupt: later.signal });
    later.abort();
    const interruptedLater = await running.catch((e: unknown) => e);
    expect(interruptedLater).toBeInstanceOf(InterruptedError);
    expect([(interruptedLater as InterruptedError).epoch, (interruptedLater as InterruptedError).step]).toEqual([1, 1]);

    const controller = new AbortController();
    const run = trainer.train({
      data,
      workers: 2,
      epochs: 1,
      batchSize: 32,
      signal: controller.signal,
      progressIntervalMs: 10,
      onBatchEnd: (progress) => {
        if (progress.step > 20) controller.abort();
      },
    });
    await expect(run).rejects.toThrow(AbortError);
    expect(await settledOsThreads(threadsBefore)).toBe(threadsBefore);
    await expect(trainer.train({ data })).rejects.toThrow(/closed/);
  });

  it("rebuilds WorkerError and NonFiniteError on the caller's side, with their messages", async () => {
    const count = 3200;
    const slice = {
      ...data,
      train: {
        images: data.train.images.subarray(0, count * 784),
        labels: data.train.labels.subarray(0, count),
        count,
      },
    };
    const faulty = await createTrainerThreadWithFaults([{ rank: 1, step: 0, kind: 'throw', times: 2 }]);
    try {
      const failed = await faulty
        .train({ data: slice, workers: 2, epochs: 1, batchSize: 64, maxRetries: 1 })
        .catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(WorkerError);
      expect((failed as Error).message).toBe(
        'epoch 1: worker 1 failed at step 1 of the epoch: injected fault at step 1 (2 failures in a row; giving up)',
      );
      expect((failed as Error).stack).toContain('(in the trainer thread)');
    } finally {
      await faulty.close();
    }
    const images = Float32Array.from(slice.train.images, (v) => v / 255);
    images[700 * 784 + 300] = NaN;
    const trainer = await createTrainerThread();
    try {
      const diverged = await trainer
        .train({ data: { ...slice, train: { ...slice.train, images } }, workers: 2, epochs: 1, batchSize: 64 })
        .catch((e: unknown) => e);
      expect(diverged).toBeInstanceOf(NonFiniteError);
      expect((diverged as Error).message).toMatch(
        /^training diverged: the loss or its gradient became NaN or infinite at epoch 1, step \d+; no model was saved\. Lower the learning rate \(--lr\)$/,
      );
    } finally {
      await trainer.close();
    }
  });
});
