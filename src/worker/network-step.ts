import * as tf from '@tensorflow/tfjs';
import { Activations, type Layout, type StepContext } from '../model/compute.js';
import type { Strides } from '../model/kernels-reference.js';
import { emptyTensor, glueKernels, heapBytes, heapView, offsetOf } from '../model/kernels.js';
import type { LayerCompute } from '../model/layer.js';
import { kindOf } from '../model/kinds.js';
import type { Network } from '../model/network.js';

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
 * A network's passes on one worker, for batches of up to `rows` samples: the layers' computations,
 * and buffers reused by every step, so that a step allocates no arrays of its own (tfjs still
 * allocates its tensors in the wasm heap, and frees them at the end of the shard).
 *
 * Gradients are explicit, not tf.grad: tfjs autodiff computes weight gradients with transposed
 * matMuls, which are ~10x slower on wasm, and cannot differentiate a convolution's filter there at
 * all. Each layer gives its own backward pass (see model/layers). Between the forward and the
 * backward pass, the softmax, the loss and d(loss)/d(logits) of the small `[classes, rows]` logits
 * are computed in JavaScript: a dozen tfjs ops fewer, and each op costs ~10 us of dispatch whatever
 * its size.
 */
export class NetworkRunner {
  readonly #network: Network;
  readonly #layers: readonly LayerCompute[];
  readonly #pixels: number;
  /** The second layout the first layer wants: the gather writes columns too (one channel's planes are its rows). */
  readonly #inputLayout: Layout | undefined;
  readonly #context: StepContext = { grad: new Float32Array(0), seed: 0, step: 0, order: undefined, start: 0 };

  constructor(
    network: Network,
    readonly rows: number,
  ) {
    this.#network = network;
    // Each layer learns the layout the next one wants, from the last back to the first.
    const layers: LayerCompute[] = [];
    let wanted: Layout | undefined;
    for (const layer of [...network.layers].reverse()) {
      const kind = kindOf(layer.spec);
      layers.unshift(kind.compute(layer, rows, wanted));
      wanted = kind.inputLayout(wanted);
    }
    this.#layers = layers;
    this.#pixels = network.input[0] * network.input[1];
    this.#inputLayout = wanted;
  }

  /** Uploads the parameters, once per step: every shard of the step, and evaluation, use them. */
  prepare(params: Float32Array): void {
    for (const layer of this.#layers) layer.prepare(params);
  }

  release(): void {
    for (const layer of this.#layers) layer.release();
  }

  /**
   * Computes, for one shard of a global batch, the gradient of the shard's *summed* cross-entropy
   * with respect to every parameter, written into `grad` (laid out as the parameters). The
   * coordinator's all-reduce sums the shards and divides by the global batch size, which gives
   * exactly the gradient of the global batch's mean loss. `seed` and `step` fix the dropout masks.
   */
  shardGradients(batch: Batch, grad: Float32Array, seed: number, step: number): BatchScore {
    const count = batch.end - batch.start;
    if (count === 0) {
      grad.fill(0);
      return { lossSum: 0, correct: 0 };
    }
    const context = this.#context;
    context.grad = grad;
    context.seed = seed;
    context.step = step;
    context.order = batch.order;
    context.start = batch.start;
    // Every tensor of the shard is freed at the end of the tidy; results are read (as heap views)
    // inside it, and copied into `grad` before it ends.
    let score: BatchScore = { lossSum: 0, correct: 0 };
    tf.tidy(() => {
      let activations = this.#gather(batch, this.#inputLayout === 'columns');
      for (const layer of this.#layers) activations = layer.forward(activations, context);
      const dLogits = emptyTensor([count, this.#network.classes]);
      const logits = activations.strided();
      score = this.#softmaxCrossEntropy(heapView(logits.tensor), logits.strides, heapView(dLogits), batch);
      let gradient: Activations | undefined = Activations.ofRows(dLogits, [this.#network.classes]);
      for (let l = this.#layers.length - 1; l >= 0 && gradient !== undefined; l--) {
        gradient = this.#layers[l].backward(gradient, context);
      }
    });
    return score;
  }

  /** Scores a batch (no order) with the prepared parameters, forward only, no dropout. */
  evaluate(batch: Batch): BatchScore {
    let score: BatchScore = { lossSum: 0, correct: 0 };
    tf.tidy(() => {
      let activations = this.#gather(batch, false);
      for (const layer of this.#layers) activations = layer.infer(activations);
      score = this.#score(heapView(tf.logSoftmax(activations.rows())), batch);
    });
    return score;
  }

  /**
   * The batch's images, gathered straight into tensors' memory on the wasm heap, as activations of
   * shape `[height, width, 1]`: rows, and with `columns` the transposed layout `[pixels, count]`
   * too. Each image is copied by a native `set`; grey levels are scaled to [0, 1], and the
   * transpose made, by kernels.wat (a JavaScript loop over the pixels took ~0.4 ms of a 3 ms MLP
   * step for 128 images).
   */
  #gather(batch: Batch, columns: boolean): Activations {
    const { images, order, start, end } = batch;
    const pixels = this.#pixels;
    const count = end - start;
    const shape = this.#network.input;
    const kernels = glueKernels();
    const rows = emptyTensor([count, shape[0], shape[1], 1]);
    const transposed = columns ? emptyTensor([pixels, count]) : undefined;
    if (images instanceof Uint8Array) {
      const staging = emptyTensor([Math.ceil((count * pixels) / 4)]);
      const bytes = heapBytes(staging, count * pixels);
      if (order === undefined) bytes.set(images.subarray(start * pixels, end * pixels));
      else
        for (let r = 0; r < count; r++)
          bytes.set(images.subarray(order[start + r] * pixels, (order[start + r] + 1) * pixels), r * pixels);
      kernels.bytes_to_floats(offsetOf(staging), offsetOf(rows), count * pixels);
    } else {
      const floats = heapView(rows);
      if (order === undefined) floats.set(images.subarray(start * pixels, end * pixels));
      else
        for (let r = 0; r < count; r++)
          floats.set(images.subarray(order[start + r] * pixels, (order[start + r] + 1) * pixels), r * pixels);
    }
    if (transposed !== undefined) kernels.transpose(offsetOf(rows), offsetOf(transposed), count, pixels);
    return Activations.of(count, shape, { rows, columns: transposed });
  }

  /**
   * Softmax cross-entropy of the logits (rows or columns, as `strides` say): returns the summed
   * loss and the count of correct answers, and writes softmax - one-hot (the summed loss's
   * gradient) into `dLogits`, `[count, classes]`. Float64 arithmetic, float32 results.
   */
  #softmaxCrossEntropy(logits: Float32Array, strides: Strides, dLogits: Float32Array, batch: Batch): BatchScore {
    const count = batch.end - batch.start;
    const classes = this.#network.classes;
    const { sB, sC } = strides;
    let lossSum = 0;
    let correct = 0;
    for (let r = 0; r < count; r++) {
      const label = batch.labels[batch.order === undefined ? batch.start + r : batch.order[batch.start + r]];
      const at = r * sB;
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[at + c * sC] > logits[at + best * sC]) best = c;
      const max = logits[at + best * sC];
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(logits[at + c * sC] - max);
      const logSum = max + Math.log(sum);
      lossSum += logSum - logits[at + label * sC];
      if (best === label) correct++;
      for (let c = 0; c < classes; c++) {
        dLogits[r * classes + c] = Math.exp(logits[at + c * sC] - logSum) - (c === label ? 1 : 0);
      }
    }
    return { lossSum, correct };
  }

  /** Loss and correct answers from log-probabilities laid out `[count, classes]`. */
  #score(logProbs: Float32Array, batch: Batch): BatchScore {
    const classes = this.#network.classes;
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
}
