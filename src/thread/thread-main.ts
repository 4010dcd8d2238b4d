/**
 * The trainer thread: runs `train()` (the coordinator, which starts its own Piscina workers) off the
 * caller's thread, exposed through comlink.
 */
import type * as tf from '@tensorflow/tfjs';
import { expose, transfer } from 'comlink';
import { nodeEndpoint } from './node-adapter.js';
import { parentPort } from 'node:worker_threads';
import { trainWithFaults } from '../coordinator/node-platform.js';
import type { TrainResult } from '../coordinator/trainer.js';
import { toWireError } from '../errors.js';
import { modelArtifacts, modelFromArtifacts } from '../model/files.js';
import type { ModelArtifacts, TrainerThreadApi } from './protocol.js';

let controller: AbortController | undefined;
let interrupter: AbortController | undefined;

const api: TrainerThreadApi = {
  async train(options, events, onEvent, faults) {
    controller = new AbortController();
    interrupter = new AbortController();
    let result: TrainResult;
    try {
      const { model } = options;
      result = await trainWithFaults(
        {
          ...options,
          // Rebuilt from a Sequential's topology, it is a tf.Sequential again.
          model: typeof model === 'object' ? ((await modelFromArtifacts(model.sequential)) as tf.Sequential) : model,
          signal: controller.signal,
          interrupt: interrupter.signal,
          onEpochEnd: events.epoch ? (log) => void onEvent({ type: 'epoch', log }) : undefined,
          onBatchEnd: events.batch ? (progress) => void onEvent({ type: 'batch', progress }) : undefined,
          onLog: events.log ? (line) => void onEvent({ type: 'log', line }) : undefined,
        },
        faults,
      );
    } catch (error) {
      // Thrown as plain data, which comlink clones whole: an Error would lose its class and fields.
      throw toWireError(error);
    }
    const model = (await modelArtifacts(result.model)) as ModelArtifacts;
    result.model.dispose();
    const { history, testLoss, testAccuracy, wallSeconds, config } = result;
    return transfer({ model, history, testLoss, testAccuracy, wallSeconds, config }, [model.weightData]);
  },
  abort() {
    controller?.abort();
  },
  interrupt() {
    interrupter?.abort();
  },
};

expose(api, nodeEndpoint(parentPort as NonNullable<typeof parentPort>));
