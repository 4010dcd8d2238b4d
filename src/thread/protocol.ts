/**
 * What crosses between a caller and its trainer thread (comlink calls). Functions cannot cross a
 * thread, so the options go without their callbacks, and the callbacks come back as one proxied
 * function that receives tagged events; the model comes back as its Layers-format artifacts.
 */
import type { BatchProgress, EpochLog, TrainConfig } from '../coordinator/config.js';
import type { TrainOptions } from '../coordinator/options.js';
import type { Fault } from '../protocol.js';

/**
 * The options without what cannot cross a thread: the callbacks and signals, and a tf.Sequential
 * model, which crosses as its Layers-format artifacts and is rebuilt in the trainer thread.
 */
export type PlainTrainOptions = Omit<
  TrainOptions,
  'signal' | 'interrupt' | 'onEpochEnd' | 'onBatchEnd' | 'onLog' | 'model'
> & { readonly model?: string | { readonly sequential: ModelArtifacts } };

export type TrainerEvent =
  | { readonly type: 'epoch'; readonly log: EpochLog }
  | { readonly type: 'batch'; readonly progress: BatchProgress }
  | { readonly type: 'log'; readonly line: string };

/** A tf.LayersModel as `model.save` hands it over: topology, weight specs, weights. */
export interface ModelArtifacts {
  readonly modelTopology: object;
  readonly weightSpecs: {
    name: string;
    shape: number[];
    dtype: 'float32' | 'int32' | 'bool' | 'string' | 'complex64';
  }[];
  readonly weightData: ArrayBuffer;
  /** What the model says about its data (see ModelMetadata). */
  readonly userDefinedMetadata?: {};
}

export interface ThreadTrainResult {
  readonly model: ModelArtifacts;
  readonly history: readonly EpochLog[];
  readonly testLoss: number;
  readonly testAccuracy: number;
  readonly wallSeconds: number;
  readonly config: TrainConfig;
}

/** The API the thread exposes. `events` says which callbacks the caller has; `faults` are for tests only. */
export interface TrainerThreadApi {
  train(
    options: PlainTrainOptions,
    events: { epoch: boolean; batch: boolean; log: boolean },
    onEvent: (event: TrainerEvent) => void,
    faults: readonly Fault[],
  ): Promise<ThreadTrainResult>;
  abort(): void;
  interrupt(): void;
}
