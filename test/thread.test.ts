import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import {
  AbortError,
  createTrainerThread,
  type Dataset,
  InterruptedError,
  loadFashionMnist,
  OptionError,
} from '../dist/src/index.js';
import { DEBIAN_DIR, settledOsThreads, tempDir } from './helpers.js';

let data: Dataset;

beforeAll(async () => {
  data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
});

describe('createTrainerThread', () => {
  it("trains off the caller's thread: callbacks arrive, the event loop keeps ticking, the model comes back", async () => {
    const threadsBefore = await settledOsThreads();
    const trainer = await createTrainerThread();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const seenDuring: number[] = [];
    const epochs: number[] = [];
    try {
      const result = await trainer.train({
        data,
        workers: 2,
        epochs: 2,
        batchSize: 64,
        onBatchEnd: () => void seenDuring.push(ticks),
        onEpochEnd: (log) => void epochs.push(log.epoch),
      });
      expect(epochs).toEqual([1, 2]);
      expect(result.testAccuracy).toBeGreaterThan(0.8);
      expect(result.model.countParams()).toBe(101_770);
      // The caller's timer kept firing while the epochs ran: ticks grew between progress reports.
      expect(seenDuring.length).toBeGreaterThan(4);
      expect(seenDuring.at(-1) as number).toBeGreaterThan(seenDuring[0]);
      expect(new Set(seenDuring).size).toBeGreaterThan(seenDuring.length / 2);
    } finally {
      clearInterval(timer);
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
