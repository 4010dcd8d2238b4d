/**
 * A data-parallel trainer for image classifiers (Fashion-MNIST first) on Node.js worker threads:
 * each worker computes gradients of dense and convolutional networks with tfjs on WebAssembly, a
 * coordinator all-reduces them and applies Adam.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export { train } from './coordinator/node-platform.js';
export type { TrainResult } from './coordinator/trainer.js';
export { DEFAULTS } from './coordinator/options.js';
export type { TrainOptions } from './coordinator/options.js';
export type { BatchProgress, EpochLog, TrainConfig } from './coordinator/config.js';
export type { LearningRateSchedule } from './optimizer/schedule.js';
export type { Augment, AugmentConfig } from './data/augment.js';
export { LAYERS_GRAMMAR } from './model/spec.js';
export { createTrainerThread } from './thread/trainer-thread.js';
export type { TrainerThread } from './thread/trainer-thread.js';
export { loadModel, saveModel } from './model/files.js';
export { loadFashionMnist, FASHION_MNIST_CLASSES } from './data/fashion-mnist.js';
export type { LoadFashionMnistOptions } from './data/fashion-mnist.js';
export type { DownloadProgress } from './data/download.js';
export type { Dataset, ImageFolderOrigin, ResizeMode, Split } from './data/dataset.js';
export { loadImageFolder } from './data/image-folder.js';
export type { ImageFolderData, ImageFolderSummary, LoadImageFolderOptions } from './data/image-folder.js';
export type { DecodeProgress, SkippedImage } from './data/image-set.js';
export type { ModelMetadata } from './model/metadata.js';
export {
  AbortError,
  DataError,
  InterruptedError,
  NonFiniteError,
  OptionError,
  UnsupportedLayerError,
  WorkerError,
} from './errors.js';
export { readCheckpoint } from './coordinator/checkpoint.js';
export type { Checkpoint } from './coordinator/checkpoint.js';

// tfjs's wasm backend, which the package registers (so that tfjs picks it over its slow plain-JS
// one), starts asynchronously, and until it has, tfjs refuses to build a layer ("The highest
// priority backend 'wasm' has not yet been initialized"). Importing the package waits for it, so
// that a program can build a tf.sequential right after its imports, as with Keras.
await tf.ready();
