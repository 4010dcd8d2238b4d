import { proxy, releaseProxy, type Remote, wrap } from 'comlink';
import { nodeEndpoint } from './node-adapter.js';
import { Worker } from 'node:worker_threads';
import { isSequential } from '../coordinator/options.js';
import { modelArtifacts, modelFromArtifacts } from '../model/files.js';
import type { TrainOptions } from '../coordinator/options.js';
import type { TrainResult } from '../coordinator/trainer.js';
import { AbortError, fromWireError, type WireError } from '../errors.js';
import type { Fault } from '../protocol.js';
import type { ModelArtifacts, PlainTrainOptions, TrainerEvent, TrainerThreadApi } from './protocol.js';

/** Training on a thread of its own, so that the caller's event loop stays free. */
export interface TrainerThread {
  /**
   * Trains as `train(options)` does, in the trainer thread. Callbacks run on the caller's thread;
   * `signal` aborts the run and ends the thread. The model is rebuilt on the caller's thread.
   */
  train(options?: TrainOptions): Promise<TrainResult>;
  /** Ends the thread (and its workers). Safe to call twice. */
  close(): Promise<void>;
}

const THREAD_FILE = new URL('./thread-main.js', import.meta.url);

/** Starts a trainer thread: the coordinator runs there, its workers are that thread's children. */
export function createTrainerThread(): Promise<TrainerThread> {
  return createTrainerThreadWithFaults([]);
}

/**
 * `createTrainerThread`, whose runs have failures injected into their workers (see trainWithFaults):
 * for the tests of errors that cross the thread only, and not part of the package's entry point.
 */
export async function createTrainerThreadWithFaults(faults: readonly Fault[]): Promise<TrainerThread> {
  const worker = new Worker(THREAD_FILE);
  const remote: Remote<TrainerThreadApi> = wrap<TrainerThreadApi>(nodeEndpoint(worker));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    remote[releaseProxy]();
    await worker.terminate();
  };
  return {
    close,
    async train(options: TrainOptions = {}) {
      if (closed) throw new Error('this trainer thread is closed; create another with createTrainerThread()');
      const { signal, interrupt, onEpochEnd, onBatchEnd, onLog, model: given, ...rest } = options;
      if (signal?.aborted) throw new AbortError();
      const sequential = isSequential(given) ? given : undefined;
      const plain: PlainTrainOptions = {
        ...rest,
        model:
          sequential === undefined
            ? (given as string | undefined)
            : { sequential: (await modelArtifacts(sequential)) as ModelArtifacts },
      };
      const onEvent = proxy((event: TrainerEvent) => {
        if (event.type === 'epoch') void onEpochEnd?.(event.log);
        else if (event.type === 'batch') onBatchEnd?.(event.progress);
        else onLog?.(event.line);
      });
      const onAbort = () => void remote.abort();
      const onInterrupt = () => void remote.interrupt();
      signal?.addEventListener('abort', onAbort);
      interrupt?.addEventListener('abort', onInterrupt);
      try {
        const running = remote.train(
          plain,
          { epoch: onEpochEnd !== undefined, batch: onBatchEnd !== undefined, log: onLog !== undefined },
          onEvent,
          faults,
        );
        // After the call: the thread handles messages in order, so the run exists when this arrives.
        if (interrupt?.aborted) onInterrupt();
        const result = await running;
        const trained = await modelFromArtifacts(result.model);
        if (sequential === undefined) return { ...result, model: trained };
        // As train() does in this thread, and model.fit: the caller's model ends up trained.
        sequential.setWeights(trained.getWeights());
        trained.dispose();
        return { ...result, model: sequential };
      } catch (error) {
        throw rebuild(error);
      } finally {
        signal?.removeEventListener('abort', onAbort);
        interrupt?.removeEventListener('abort', onInterrupt);
        if (signal?.aborted) await close();
      }
    },
  };
}

/** The trainer thread throws its errors as WireErrors (see thread-main.ts): make them errors of their classes again. */
function rebuild(error: unknown): unknown {
  const wire = error as Partial<WireError> | undefined;
  if (error instanceof Error || typeof wire?.name !== 'string' || typeof wire.message !== 'string') return error;
  return fromWireError(wire as WireError, 'in the trainer thread');
}
