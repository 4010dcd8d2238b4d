import * as tf from '@tensorflow/tfjs';
import { type AugmentConfig, copyTransformed, transformOf, type Transform } from '../data/augment.js';
import {
  Activations,
  type Collective,
  type Layout,
  type Shape,
  type StepContext,
  type StepShard,
} from '../model/compute.js';
import type { Strides } from '../model/kernels-reference.js';
import { emptyTensor, glueKernels, heapBytes, heapView, offsetOf } from '../model/kernels.js';
import type { LayerCompute } from '../model/layer.js';
import { kindOf } from '../model/kinds.js';
import type { Network } from '../model/network.js';

/** The images a batch's samples come from. */
export interface Samples {
  /**
   * Levels 0-255, scaled to [0, 1] as they are gathered, or float32 values taken as they are;
   * height x width x channels values per image, NHWC.
   */
  readonly images: Uint8Array | Float32Array;
  readonly labels: Uint8Array;
  /** Image indices; when absent, sample i is image i. */
  readonly order?: Int32Array;
}

/** Samples `[start, end)` (of the order, if there is one). */
export interface Batch extends Samples {
  readonly start: number;
  readonly end: number;
}

export interface BatchScore {
  /** Sum (not mean) of the samples' cross-entropy. */
  readonly lossSum: number;
  readonly correct: number;
}

/** A shard of a step as the worker computing it holds it: its samples change from step to step. */
export interface ShardWork extends StepShard {
  start: number;
  end: number;
  /** Set by `gradients`: the sum (not mean) of its samples' cross-entropy, and its correct answers. */
  lossSum: number;
  correct: number;
}

/** What fixes a step besides its samples and parameters. */
export interface StepOptions {
  /** The run's seed and the 0-based global step: with the sample, they fix every dropout mask. */
  readonly seed: number;
  readonly step: number;
  /**
   * The run's augmentation, if it has one, and the 0-based epoch: with the seed and the image,
   * they fix each training image's transform (see data/augment.ts).
   */
  readonly augment?: { readonly config: AugmentConfig; readonly epoch: number };
  /** Sums over all the shards of the step, every computing worker's. */
  readonly collective: Collective;
  /** The layers' state, and whether this worker updates it in this step (see StepContext). */
  readonly state: Float32Array;
  readonly updatesState: boolean;
}

/**
 * A network's passes on one worker, for shards of up to `rows` samples: the layers' computations,
 * and buffers reused by every step, so that a step allocates no arrays of its own (tfjs still
 * allocates its tensors in the wasm heap, and frees them at the end of the step).
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
  /**
   * The second layout the first layer wants: the gather writes columns too; planes it leaves to
   * Activations (one channel's are its rows, several channels' a transpose).
   */
  readonly #inputLayout: Layout | undefined;
  /** The step's shards that have samples: the ones the layers compute. */
  readonly #computed: ShardWork[] = [];
  #context: StepContext | undefined;
  /** The transform of the image being gathered, reused from image to image. */
  readonly #transform: Transform = { flip: false, dx: 0, dy: 0 };

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
      wanted = kind.inputLayout(layer, wanted);
    }
    this.#layers = layers;
    this.#inputLayout = wanted;
  }

  /** Uploads the parameters and reads the state, once per step: every shard of the step, and evaluation, use them. */
  prepare(params: Float32Array, state: Float32Array): void {
    for (const layer of this.#layers) layer.prepare(params, state);
  }

  release(): void {
    for (const layer of this.#layers) layer.release();
  }

  /**
   * Computes, for each of `shards` (the shards of a global batch this worker computes, in shard
   * order), the gradient of the shard's *summed* cross-entropy with respect to every parameter,
   * written into the shard's slot (laid out as the parameters), and its score. The coordinator's
   * all-reduce sums the shards and divides by the global batch size, which gives exactly the
   * gradient of the global batch's mean loss. The passes run layer by layer over all of the
   * shards at once, so that a layer can sum over the whole step in between (the collective): every
   * computing worker calls this every step, also when none of its shards has a sample.
   */
  gradients(samples: Samples, shards: readonly ShardWork[], options: StepOptions): void {
    const computed = this.#computed;
    computed.length = 0;
    for (const shard of shards) {
      shard.lossSum = shard.correct = 0;
      if (shard.end > shard.start) computed.push(shard);
      else shard.grad.fill(0);
    }
    const context = (this.#context ??= { ...options, shards: computed, order: undefined });
    context.seed = options.seed;
    context.step = options.step;
    context.order = samples.order;
    context.collective = options.collective;
    context.state = options.state;
    context.updatesState = options.updatesState;
    const classes = this.#network.classes;
    // Every tensor of the step is freed at the end of the tidy; results are read (as heap views)
    // inside it, and copied into the slots before it ends.
    tf.tidy(() => {
      const columns = this.#inputLayout === 'columns';
      let activations = computed.map((shard) =>
        gather(samples, shard.start, shard.end, this.#network.input, columns, options, this.#transform),
      );
      for (const layer of this.#layers) activations = layer.forward(activations, context);
      let gradients: Activations[] | undefined = activations.map((logits, j) => {
        const dLogits = emptyTensor([logits.count, classes]);
        const { tensor, strides } = logits.strided();
        this.#softmaxCrossEntropy(heapView(tensor), strides, heapView(dLogits), samples, computed[j]);
        return Activations.ofRows(dLogits, [classes]);
      });
      for (let l = this.#layers.length - 1; l >= 0 && gradients !== undefined; l--) {
        gradients = this.#layers[l].backward(gradients, context);
      }
    });
  }

  /** Scores a batch (no order) with the prepared parameters, forward only, no dropout. */
  evaluate(batch: Batch): BatchScore {
    let score: BatchScore = { lossSum: 0, correct: 0 };
    tf.tidy(() => {
      let activations = gather(batch, batch.start, batch.end, this.#network.input, false, undefined, this.#transform);
      for (const layer of this.#layers) activations = layer.infer(activations);
      score = this.#score(heapView(tf.logSoftmax(activations.rows())), batch);
    });
    return score;
  }

  /**
   * Softmax cross-entropy of a shard's logits (rows or columns, as `strides` say): sets the shard's
   * summed loss and count of correct answers, and writes softmax - one-hot (the summed loss's
   * gradient) into `dLogits`, `[count, classes]`. Float64 arithmetic, float32 results.
   */
  #softmaxCrossEntropy(
    logits: Float32Array,
    strides: Strides,
    dLogits: Float32Array,
    samples: Samples,
    shard: ShardWork,
  ): void {
    const count = shard.end - shard.start;
    const classes = this.#network.classes;
    const { sB, sC } = strides;
    let lossSum = 0;
    let correct = 0;
    for (let r = 0; r < count; r++) {
      const label = samples.labels[samples.order === undefined ? shard.start + r : samples.order[shard.start + r]];
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
    shard.lossSum = lossSum;
    shard.correct = correct;
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

/**
 * The batch's images, gathered straight into tensors' memory on the wasm heap, as activations of
 * shape `[height, width, channels]`: rows, and with `columns` the transposed layout
 * `[height * width * channels, count]` too (features in NHWC order, as a flatten has them). Each
 * image, all its channels, is copied by one native `set`, or, when a step's `augment` changes
 * it, flipped and shifted on its way (copyTransformed: still one write per value, into the same
 * memory); levels are scaled to [0, 1], and the transpose made, by kernels.wat (a JavaScript
 * loop over the pixels took ~0.4 ms of a 3 ms MLP step for 128 images). `transform` is scratch
 * space for an image's transform, which the caller keeps from step to step.
 */
export function gather(
  samples: Samples,
  start: number,
  end: number,
  shape: Shape,
  columns: boolean,
  step: Pick<StepOptions, 'augment' | 'seed'> | undefined,
  transform: Transform,
): Activations {
  const { images, order } = samples;
  const pixels = shape[0] * shape[1] * shape[2];
  const count = end - start;
  const kernels = glueKernels();
  const rows = emptyTensor([count, shape[0], shape[1], shape[2]]);
  const transposed = columns ? emptyTensor([pixels, count]) : undefined;
  const staging = images instanceof Uint8Array ? emptyTensor([Math.ceil((count * pixels) / 4)]) : undefined;
  const target = staging === undefined ? heapView(rows) : heapBytes(staging, count * pixels);
  if (order === undefined) {
    // Evaluation: the test images as they are.
    target.set(images.subarray(start * pixels, end * pixels));
  } else if (step?.augment === undefined) {
    for (let r = 0; r < count; r++)
      target.set(images.subarray(order[start + r] * pixels, (order[start + r] + 1) * pixels), r * pixels);
  } else {
    const { config, epoch } = step.augment;
    for (let r = 0; r < count; r++) {
      const image = order[start + r];
      transformOf(config, step.seed, epoch, image, transform);
      copyTransformed(images, image * pixels, target, r * pixels, shape[0], shape[1], shape[2], transform);
    }
  }
  if (staging !== undefined) kernels.bytes_to_floats(offsetOf(staging), offsetOf(rows), count * pixels);
  if (transposed !== undefined) kernels.transpose(offsetOf(rows), offsetOf(transposed), count, pixels);
  return Activations.of(count, shape, { rows, columns: transposed });
}
