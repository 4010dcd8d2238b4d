import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { LayerSlice } from '../model/layout.js';

/** Pixel value -> float in [0, 1], as the tutorial's `images / 255.0`. */
const SCALE = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * Buffers reused by every step of a worker, sized for its largest shard, so that the step allocates
 * no arrays of its own (tfjs still allocates its tensors in the wasm heap).
 */
export class Scratch {
  /** The shard's images, [rows, pixels], and the same transposed, [pixels, rows]. */
  readonly inputs: Float32Array;
  readonly inputsT: Float32Array;
  /** d(summed loss)/d(logits), [classes, rows]. */
  readonly dLogits: Float32Array;
  constructor(
    readonly rows: number,
    readonly pixels: number,
    readonly classes: number,
  ) {
    this.inputs = new Float32Array(rows * pixels);
    this.inputsT = new Float32Array(rows * pixels);
    this.dLogits = new Float32Array(rows * classes);
  }
}

export interface Batch {
  /** Grey levels 0-255, scaled to [0, 1] as they are gathered, or float32 values taken as they are. */
  readonly images: Uint8Array | Float32Array;
  readonly labels: Uint8Array;
  /** Image indices; when absent, the batch is images `[start, end)` in order. */
  readonly order?: Int32Array;
  readonly start: number;
  readonly end: number;
}

export interface BatchScore {
  /** Sum (not mean) of the samples' cross-entropy. */
  readonly lossSum: number;
  readonly correct: number;
}

/**
 * Computes, for one shard of a global batch, the gradient of the shard's *summed* cross-entropy with
 * respect to every parameter, written into `grad` (laid out as the parameters). The coordinator's
 * all-reduce sums the shards and divides by the global batch size, which gives exactly the gradient
 * of the global batch's mean loss.
 *
 * Gradients are explicit, not tf.grad: tfjs autodiff computes weight gradients with transposed
 * matMuls, which are ~10x slower on wasm. Activations are kept as [units, rows] so every matMul
 * here has plain operands. Between the forward and the backward pass, the softmax, the loss and
 * d(loss)/d(logits) of the small [classes, rows] logits are computed in JavaScript: a dozen tfjs
 * ops fewer, and each op costs ~10 us of dispatch whatever its size.
 */
export function shardGradients(model: ParamTensors, batch: Batch, scratch: Scratch, grad: Float32Array): BatchScore {
  const rows = batch.end - batch.start;
  if (rows === 0) {
    grad.fill(0);
    return { lossSum: 0, correct: 0 };
  }
  const { classes, pixels } = scratch;
  const { layers, weights, biases, weightsT } = model;
  gatherInputs(batch, scratch, true);
  const x = tf.tensor2d(scratch.inputs.subarray(0, rows * pixels), [rows, pixels]);
  const xT = tf.tensor2d(scratch.inputsT.subarray(0, rows * pixels), [pixels, rows]);
  const last = layers.length - 1;
  const forward = tf.tidy(() => {
    const inputs: tf.Tensor[] = [xT]; // inputs[l] is layer l's input, [units, rows]
    const preActivations: tf.Tensor[] = [];
    for (let l = 0; l <= last; l++) {
      const z = tf.add(tf.matMul(weights[l], inputs[l]), biases[l]);
      preActivations.push(z);
      if (l < last) inputs.push(tf.relu(z));
    }
    return { hidden: inputs.slice(1), preActivations };
  });
  const score = softmaxCrossEntropy(heapView(forward.preActivations[last]), batch, scratch);
  sumRows(scratch.dLogits, classes, rows, grad, layers[last].biasOffset);
  const dLogits = tf.tensor2d(scratch.dLogits.subarray(0, classes * rows), [classes, rows]);
  const backward = tf.tidy(() => {
    let dz = dLogits;
    const weightGrads: tf.Tensor[] = [];
    const hiddenGrads: tf.Tensor[] = []; // d(loss)/d(pre-activation) of each hidden layer, [units, rows]
    for (let l = last; l >= 0; l--) {
      const layerInput = l === 0 ? x : tf.transpose(forward.hidden[l - 1]); // [rows, inputs]
      weightGrads[l] = tf.matMul(dz, layerInput);
      if (l > 0) {
        dz = tf.mul(tf.matMul(weightsT[l] as tf.Tensor, dz), tf.step(forward.preActivations[l - 1]));
        hiddenGrads[l - 1] = dz;
      }
    }
    return { weightGrads, hiddenGrads };
  });
  // Read results after the tidy: reading while its intermediates are alive costs ~14x (FACTS.md).
  for (let l = 0; l <= last; l++) grad.set(heapView(backward.weightGrads[l]), layers[l].weightOffset);
  // Bias gradients are row sums of d(loss)/d(pre-activation), summed here rather than by two more
  // tfjs ops (the output layer's was summed with the softmax).
  for (let l = 0; l < last; l++)
    sumRows(heapView(backward.hiddenGrads[l]), layers[l].outputs, rows, grad, layers[l].biasOffset);
  tf.dispose([x, xT, forward, dLogits, backward]);
  return score;
}

/**
 * The parameters as tfjs tensors, uploaded once per step and shared by every shard a worker computes
 * in that step (they change only between steps).
 */
export interface ParamTensors {
  readonly layers: readonly LayerSlice[];
  /** [outputs, inputs] per layer, and [outputs, 1] biases. */
  readonly weights: readonly tf.Tensor[];
  readonly biases: readonly tf.Tensor[];
  /** [inputs, outputs] per layer, for the backward pass; undefined for the first layer, which needs none. */
  readonly weightsT: readonly (tf.Tensor | undefined)[];
}

export function uploadParams(params: Float32Array, layers: readonly LayerSlice[]): ParamTensors {
  const weights = layers.map((l) => tf.tensor2d(params.subarray(l.weightOffset, l.biasOffset), [l.outputs, l.inputs]));
  const biases = layers.map((l) =>
    tf.tensor2d(params.subarray(l.biasOffset, l.biasOffset + l.outputs), [l.outputs, 1]),
  );
  const weightsT = weights.map((w, l) => (l === 0 ? undefined : tf.transpose(w)));
  return { layers, weights, biases, weightsT };
}

export function disposeParams(model: ParamTensors): void {
  tf.dispose([...model.weights, ...model.biases, ...model.weightsT.filter((w) => w !== undefined)]);
}

/** Writes the sums of the rows of a [units, rows] matrix into `out[offset...]` (float64 sums). */
function sumRows(values: Float32Array, units: number, rows: number, out: Float32Array, offset: number): void {
  for (let u = 0; u < units; u++) {
    let sum = 0;
    for (let r = u * rows; r < (u + 1) * rows; r++) sum += values[r];
    out[offset + u] = sum;
  }
}

/**
 * Softmax cross-entropy of logits laid out [classes, rows]: returns the summed loss and the count
 * of correct answers, and writes softmax - one-hot (the summed loss's gradient) into
 * `scratch.dLogits`, in the same layout. Float64 arithmetic, float32 results.
 */
function softmaxCrossEntropy(logits: Float32Array, batch: Batch, scratch: Scratch): BatchScore {
  const rows = batch.end - batch.start;
  const { classes, dLogits } = scratch;
  let lossSum = 0;
  let correct = 0;
  for (let r = 0; r < rows; r++) {
    const label = batch.labels[batch.order === undefined ? batch.start + r : batch.order[batch.start + r]];
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[c * rows + r] > logits[best * rows + r]) best = c;
    const max = logits[best * rows + r];
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[c * rows + r] - max);
    const logSum = max + Math.log(sum);
    lossSum += logSum - logits[label * rows + r];
    if (best === label) correct++;
    for (let c = 0; c < classes; c++)
      dLogits[c * rows + r] = Math.exp(logits[c * rows + r] - logSum) - (c === label ? 1 : 0);
  }
  return { lossSum, correct };
}

/**
 * Scores images `[batch.start, batch.end)` (no order) with the current parameters, in chunks of
 * the scratch's size. Forward only, in the usual [rows, units] layout: the transposed weights are
 * made once and XNNPACK packs each of them once for all chunks.
 */
export function evaluateBatch(
  params: Float32Array,
  layers: readonly LayerSlice[],
  batch: Batch,
  scratch: Scratch,
): BatchScore {
  const kernels = layers.map((l) =>
    tf.tidy(() => tf.transpose(tf.tensor2d(params.subarray(l.weightOffset, l.biasOffset), [l.outputs, l.inputs]))),
  );
  const biases = layers.map((l) => tf.tensor1d(params.subarray(l.biasOffset, l.biasOffset + l.outputs)));
  let lossSum = 0;
  let correct = 0;
  for (let start = batch.start; start < batch.end; start += scratch.rows) {
    const chunk = { ...batch, start, end: Math.min(batch.end, start + scratch.rows) };
    gatherInputs(chunk, scratch, false);
    const rows = chunk.end - chunk.start;
    const x = tf.tensor2d(scratch.inputs.subarray(0, rows * scratch.pixels), [rows, scratch.pixels]);
    const logProbs = tf.tidy(() => {
      let a: tf.Tensor = x;
      for (let l = 0; l < layers.length; l++) {
        const z = tf.add(tf.matMul(a, kernels[l]), biases[l]);
        a = l < layers.length - 1 ? tf.relu(z) : z;
      }
      return tf.logSoftmax(a);
    });
    const score = scoreLogProbs(heapView(logProbs), chunk, scratch.classes);
    lossSum += score.lossSum;
    correct += score.correct;
    tf.dispose([x, logProbs]);
  }
  tf.dispose([kernels, biases]);
  return { lossSum, correct };
}

/** Gathers the batch's images into `scratch.inputs`, and with `transposed` also into `scratch.inputsT`. */
function gatherInputs(batch: Batch, scratch: Scratch, transposed: boolean): void {
  const { images, order, start, end } = batch;
  const { inputs, inputsT, pixels } = scratch;
  const rows = end - start;
  // One loop per pixel type, so that each stays monomorphic for V8.
  const scale = images instanceof Uint8Array ? SCALE : undefined;
  for (let r = 0; r < rows; r++) {
    const from = (order === undefined ? start + r : order[start + r]) * pixels;
    const to = r * pixels;
    if (scale !== undefined) {
      for (let p = 0; p < pixels; p++) inputs[to + p] = scale[images[from + p]];
    } else {
      for (let p = 0; p < pixels; p++) inputs[to + p] = images[from + p];
    }
    if (transposed) {
      for (let p = 0; p < pixels; p++) inputsT[p * rows + r] = inputs[to + p];
    }
  }
}

function scoreLogProbs(logProbs: Float32Array, batch: Batch, classes: number): BatchScore {
  let lossSum = 0;
  let correct = 0;
  for (let r = 0; r < batch.end - batch.start; r++) {
    const index = batch.order === undefined ? batch.start + r : batch.order[batch.start + r];
    const label = batch.labels[index];
    const row = r * classes;
    lossSum -= logProbs[row + label];
    let best = 0;
    for (let c = 1; c < classes; c++) if (logProbs[row + c] > logProbs[row + best]) best = c;
    if (best === label) correct++;
  }
  return { lossSum, correct };
}

/**
 * A view of a tensor's data where it lives in the wasm heap. `dataSync()` would copy it into a
 * fresh array on every call; the view costs nothing and is read before the tensor is disposed.
 */
function heapView(tensor: tf.Tensor): Float32Array {
  return (tf.backend() as BackendWasm).typedArrayFromHeap(tensor) as Float32Array;
}
