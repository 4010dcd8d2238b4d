import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  AbortError,
  createTrainerThread,
  type Dataset,
  InterruptedError,
  loadFashionMnist,
  OptionError,
} from '../dist/src/index.js';
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
      const result = await trainer.train({
        data,
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
});
