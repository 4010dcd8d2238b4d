/**
 * `npm run bench:conv`: each 3x3 convolution of a network, pass by pass (forward, filter gradient,
 * input gradient), on one thread for one shard of real images, with tfjs's direct convolution, with
 * Winograd's F(2x2, 3x3) and F(4x4, 3x3) in every pass, and with the rule's choice (winogradPlan),
 * in alternating rounds; then each algorithm's error against a float64 direct convolution of the
 * same real activations and gradients. Prints tables; writes JSON with --json FILE.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseFlags } from '../src/cli/flags.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { isUserError, OptionError } from '../src/errors.js';
import { Activations, type Layout, type StepContext } from '../src/model/compute.js';
import { loadModel } from '../src/model/files.js';
import { importSequential } from '../src/model/keras.js';
import { emptyTensor, glueKernels, heapBytes, heapView, offsetOf } from '../src/model/kernels.js';
import type { LayerCompute, PlacedLayer } from '../src/model/layer.js';
import { kindOf } from '../src/model/kinds.js';
import { ConvCompute, type ConvPass, type ConvSpec } from '../src/model/layers/conv.js';
import { buildNetwork, initializeParams, type Network } from '../src/model/network.js';
import { formatLayers, parseLayers, PRESETS, type Preset, presetLayers } from '../src/model/spec.js';
import { type WinogradPlan, winogradCan, winogradPlan } from '../src/model/winograd.js';
import { Rng } from '../src/rng.js';
import { SharedCollective } from '../src/worker/collective.js';
import { median } from './stats.js';

const USAGE = `Usage: npm run bench:conv -- [flags]

Times every 3x3 convolution's forward pass, filter gradient and input gradient on one thread for a
shard of real Fashion-MNIST images, with tfjs's direct convolution, with Winograd's F(2x2, 3x3) and
F(4x4, 3x3) in every pass, and with the rule's choice per pass, in alternating rounds; then measures
each one's error against a float64 direct convolution of the same activations.

Flags:
  --model NAME   ${PRESETS.join(', ')} (default: cnn)
  --layers SPEC  a network in the layer grammar instead of --model
  --from DIR     a trained model directory (npm run train's --out): its layers and weights
  --images N     samples in the shard (default: 64, the default batch of 128 on 2 workers)
  --rounds N     timed rounds, each algorithm once per round (default: 20)
  --json FILE    also write the results as JSON
  -h, --help     show this help`;

const PASSES: readonly ConvPass[] = ['forward', 'filter gradient', 'input gradient'];

interface Algorithm {
  readonly name: string;
  readonly algorithm: 'direct' | WinogradPlan;
}

const everyPass = (tile: 2 | 4): WinogradPlan => ({ tile, forward: true, inputGradient: true, filterGradient: true });

interface LayerReport {
  readonly layer: string;
  readonly input: readonly number[];
  readonly rule: WinogradPlan | 'direct';
  /** Per algorithm: the median ms of each pass, and of the three together. */
  readonly ms: Record<string, Partial<Record<ConvPass, number>> & { total: number }>;
  /** Per algorithm: direct's time over its time, each pass, then the median of the rounds' ratios of the totals. */
  readonly speedup: Record<string, Partial<Record<ConvPass, number>> & { total: number }>;
  /** Per algorithm and pass: the largest error over the largest value, and the RMS error over the RMS value. */
  readonly error: Record<string, Partial<Record<ConvPass, { max: number; rms: number }>>>;
}

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    model: { type: 'string' },
    layers: { type: 'string' },
    from: { type: 'string' },
    images: { type: 'string' },
    rounds: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const integer = (flag: 'images' | 'rounds', fallback: number, max: number) => {
    const text = values[flag];
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new OptionError(`--${flag} must be an integer between 1 and ${max}, got "${text}"`);
    }
    return value;
  };
  const images = integer('images', 64, 1024);
  const rounds = integer('rounds', 20, 1000);
  const model = (values.model ?? 'cnn') as Preset;
  if (!PRESETS.includes(model)) throw new OptionError(`--model must be ${PRESETS.join(' or ')}, got "${model}"`);
  await tf.setBackend('wasm');
  const data = await loadFashionMnist();
  const image = { height: data.height, width: data.width };
  const classes = data.classNames.length;
  let network: Network;
  let params: Float32Array;
  let state: Float32Array;
  if (values.from !== undefined) {
    ({ network, params, state } = importSequential((await loadModel(values.from)) as tf.Sequential, image, classes));
  } else {
    const specs = values.layers !== undefined ? parseLayers(values.layers, '--layers') : presetLayers(model, classes);
    network = buildNetwork(specs, image, classes, values.layers !== undefined ? '--layers' : '--model');
    params = new Float32Array(network.paramCount);
    state = new Float32Array(network.stateCount);
    initializeParams(network, params, state, new Rng(1));
  }
  const convs = network.layers.filter(
    (layer): layer is PlacedLayer<ConvSpec> => layer.spec.kind === 'conv' && layer.spec.kernel === 3,
  );
  if (convs.length === 0) throw new OptionError('the network has no 3x3 convolution to measure');
  console.log(
    `Convolutions of ${formatLayers(network.layers.map((l) => l.spec))}, ${values.from === undefined ? 'initial weights (seed 1)' : `the weights of ${values.from}`}`,
  );
  console.log(
    `${images} real training images, one thread (tfjs ${tf.version.tfjs}, wasm); ${cpus()[0]?.model.trim() ?? 'unknown CPU'}; ${rounds} rounds, each algorithm once per round, in turn`,
  );
  const recorded = recordActivations(network, params, state, data.train, images);
  const reports = convs.map((layer) =>
    measureLayer(layer, params, state, recorded.get(layer.index) as Recorded, rounds),
  );
  if (values.json) {
    writeFileSync(values.json, `${JSON.stringify({ images, rounds, reports }, null, 2)}\n`);
    console.log(`\nWrote ${values.json}`);
  }
}

/**
 * A step's context for a pass over one shard of `count` samples, the whole step, whose gradient
 * goes into `grad`: no layer measured here sums over the step's shards (the collective).
 */
function oneShard(count: number, grad: Float64Array, state: Float32Array): StepContext {
  const collective = SharedCollective.alone(1, 0);
  collective.beginStep(count);
  const shards = [{ index: 0, start: 0, end: count, grad }];
  return { shards, seed: 1, step: 0, order: undefined, collective, state, updatesState: true };
}

/** A convolution's input rows and the loss's gradient at its output, from a real step. */
interface Recorded {
  readonly input: Float32Array;
  readonly gradient: Float32Array;
}

/**
 * One training step's forward and backward pass over the first `count` images, through the
 * network's own layers, recording every convolution's input and the gradient that reaches its
 * output (of the shard's summed cross-entropy, as the trainer computes it).
 */
function recordActivations(
  network: Network,
  params: Float32Array,
  state: Float32Array,
  train: { images: Uint8Array | Float32Array; labels: Uint8Array },
  count: number,
) {
  const { layers } = network;
  // Each layer learns the layout the next one wants, from the last back to the first, as in a worker.
  const computes: LayerCompute[] = [];
  let wanted: Layout | undefined;
  for (const layer of [...layers].reverse()) {
    const kind = kindOf(layer.spec);
    computes.unshift(kind.compute(layer, count, wanted));
    wanted = kind.inputLayout(layer, wanted);
  }
  const context = oneShard(count, new Float64Array(network.paramCount), state);
  const recorded = new Map<number, Recorded>();
  const inputs = new Map<number, Float32Array>();
  for (const compute of computes) compute.prepare(params, state);
  tf.tidy(() => {
    const [height, width, channels] = network.input;
    const pixels = height * width * channels;
    const rows = emptyTensor([count, height, width, channels]);
    if (train.images instanceof Float32Array) heapView(rows).set(train.images.subarray(0, count * pixels));
    else {
      const staging = emptyTensor([Math.ceil((count * pixels) / 4)]);
      heapBytes(staging, count * pixels).set(train.images.subarray(0, count * pixels));
      glueKernels().bytes_to_floats(offsetOf(staging), offsetOf(rows), count * pixels);
    }
    let activations = Activations.of(count, network.input, { rows });
    computes.forEach((compute, i) => {
      if (layers[i].spec.kind === 'conv') inputs.set(i, heapView(activations.rows()).slice());
      [activations] = compute.forward([activations], context);
    });
    // d(summed cross-entropy)/d(logits) = softmax - one-hot.
    const logits = activations.rows().dataSync() as Float32Array;
    const classes = network.classes;
    const dLogits = new Float32Array(count * classes);
    for (let r = 0; r < count; r++) {
      const row = logits.subarray(r * classes, (r + 1) * classes);
      const max = Math.max(...row);
      const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
      for (let c = 0; c < classes; c++) dLogits[r * classes + c] = Math.exp(row[c] - max) / sum;
      dLogits[r * classes + train.labels[r]] -= 1;
    }
    let gradient: Activations | undefined = Activations.ofRows(tf.tensor2d(dLogits, [count, classes]), [classes]);
    for (let i = computes.length - 1; i >= 0 && gradient !== undefined; i--) {
      if (layers[i].spec.kind === 'conv') {
        recorded.set(i, { input: inputs.get(i) as Float32Array, gradient: gradient.rows().dataSync() as Float32Array });
      }
      gradient = computes[i].backward([gradient], context)?.[0];
    }
  });
  for (const compute of computes) compute.release();
  return recorded;
}

function measureLayer(
  layer: PlacedLayer<ConvSpec>,
  params: Float32Array,
  state: Float32Array,
  recorded: Recorded,
  rounds: number,
): LayerReport {
  const rule = winogradPlan(layer.spec, layer.input) ?? 'direct';
  const algorithms: Algorithm[] = [{ name: 'direct', algorithm: 'direct' }];
  if (winogradCan(layer.spec, layer.input)) {
    algorithms.push({ name: 'F(2x2)', algorithm: everyPass(2) }, { name: 'F(4x4)', algorithm: everyPass(4) });
  }
  const ruleIsListed = algorithms.some((a) => JSON.stringify(a.algorithm) === JSON.stringify(rule));
  if (!ruleIsListed) algorithms.push({ name: 'rule', algorithm: rule });
  const count = recorded.input.length / (layer.input[0] * layer.input[1] * layer.input[2]);
  // A first layer with parameters has no input gradient to compute.
  const passes = PASSES.filter((p) => p !== 'input gradient' || layer.needsInputGradient);
  const times = new Map(algorithms.map((a) => [a.name, new Map(PASSES.map((p) => [p, [] as number[]]))]));
  const input = tf.tensor4d(recorded.input, [count, ...(layer.input as [number, number, number])]);
  const gradient = tf.tensor4d(recorded.gradient, [count, ...(layer.output as [number, number, number])]);
  let round = -3; // three rounds to warm up
  const computes = algorithms.map(
    ({ name, algorithm }) =>
      new ConvCompute(layer, {
        algorithm,
        timer: (pass, start) => {
          if (round >= 0)
            times
              .get(name)
              ?.get(pass)
              ?.push(performance.now() - start);
        },
      }),
  );
  const context = oneShard(count, new Float64Array(params.length), state);
  for (; round < rounds; round++) {
    // A different algorithm first in each round: none always runs on a cache the previous one warmed.
    for (let k = 0; k < computes.length; k++) {
      const a = (k + Math.max(0, round)) % computes.length;
      const compute = computes[a];
      compute.prepare(params);
      tf.tidy(() => {
        compute.forward([Activations.ofRows(input, layer.input)]);
        compute.backward([Activations.ofRows(gradient, layer.output)], context);
      });
      compute.release();
    }
  }
  const ms: LayerReport['ms'] = {};
  const speedup: LayerReport['speedup'] = {};
  const roundTotals = (name: string) =>
    Array.from({ length: rounds }, (_, r) =>
      passes.reduce((sum, p) => sum + (times.get(name)?.get(p) as number[])[r], 0),
    );
  for (const { name } of algorithms) {
    const timed = times.get(name) as Map<ConvPass, number[]>;
    ms[name] = {
      ...Object.fromEntries(passes.map((p) => [p, median(timed.get(p) as number[])])),
      total: median(roundTotals(name)),
    } as LayerReport['ms'][string];
  }
  const direct = roundTotals('direct');
  for (const { name } of algorithms) {
    const totals = roundTotals(name);
    speedup[name] = {
      ...Object.fromEntries(passes.map((p) => [p, (ms.direct[p] as number) / (ms[name][p] as number)])),
      total: median(direct.map((d, r) => d / totals[r])),
    } as LayerReport['speedup'][string];
  }
  tf.dispose([input, gradient]);
  const error = measureErrors(layer, params, state, recorded, count, algorithms);
  const report: LayerReport = {
    layer: `conv:${layer.spec.filters}:3:${layer.spec.padding} (layer ${layer.index + 1})`,
    input: layer.input,
    rule,
    ms,
    speedup,
    error,
  };
  printLayer(report, algorithms);
  return report;
}

/**
 * Each algorithm's three passes on the recorded activations, against a float64 direct
 * convolution's. The layer is taken as linear, so that every algorithm's backward pass gets the
 * same pre-activation gradient: the errors are the passes' own, not a relu mask's.
 */
function measureErrors(
  layer: PlacedLayer<ConvSpec>,
  params: Float32Array,
  state: Float32Array,
  recorded: Recorded,
  count: number,
  algorithms: readonly Algorithm[],
): LayerReport['error'] {
  const linear: PlacedLayer<ConvSpec> = { ...layer, spec: { ...layer.spec, activation: 'linear' } };
  const kernel = params.subarray(layer.offset, layer.offset + layer.paramCount);
  const reference = direct64(linear, kernel, recorded.input, recorded.gradient, count);
  const error: LayerReport['error'] = {};
  for (const { name, algorithm } of algorithms) {
    const compute = new ConvCompute(linear, { algorithm });
    const grad = new Float64Array(params.length);
    compute.prepare(params);
    const context = oneShard(count, grad, state);
    const [y, dx] = tf.tidy(() => {
      const input = tf.tensor4d(recorded.input, [count, ...(layer.input as [number, number, number])]);
      const upstream = tf.tensor4d(recorded.gradient, [count, ...(layer.output as [number, number, number])]);
      const [output] = compute.forward([Activations.ofRows(input, layer.input)]);
      const values = output.rows().dataSync().slice();
      const back = compute.backward([Activations.ofRows(upstream, layer.output)], context)?.[0];
      return [values, back?.rows().dataSync().slice()];
    });
    compute.release();
    const taps = 9 * layer.input[2] * layer.spec.filters;
    error[name] = {
      forward: compare(y as Float32Array, reference.y),
      'filter gradient': compare(grad.subarray(layer.offset, layer.offset + taps), reference.dw),
      ...(dx === undefined ? {} : { 'input gradient': compare(dx as Float32Array, reference.dx) }),
    };
  }
  return error;
}

function compare(actual: ArrayLike<number>, expected: Float64Array): { max: number; rms: number } {
  let maxError = 0;
  let maxValue = 0;
  let squaredError = 0;
  let squaredValue = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = actual[i] - expected[i];
    maxError = Math.max(maxError, Math.abs(e));
    maxValue = Math.max(maxValue, Math.abs(expected[i]));
    squaredError += e * e;
    squaredValue += expected[i] * expected[i];
  }
  return { max: maxError / maxValue, rms: Math.sqrt(squaredError / squaredValue) };
}

/** The forward pass (with its bias), the input gradient and the filter gradient of a 3x3 stride-1 convolution, in float64, by their definitions. */
function direct64(layer: PlacedLayer<ConvSpec>, params: Float32Array, x: Float32Array, dz: Float32Array, n: number) {
  const [h, w, c] = layer.input;
  const [oh, ow, f] = layer.output;
  const pad = layer.spec.padding === 'same' ? 1 : 0;
  const bias = params.subarray(9 * c * f);
  const y = new Float64Array(n * oh * ow * f);
  const dx = new Float64Array(n * h * w * c);
  const dw = new Float64Array(9 * c * f);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const at = ((b * oh + oy) * ow + ox) * f;
        for (let co = 0; co < f; co++) y[at + co] = bias[co];
        for (let ky = 0; ky < 3; ky++) {
          const iy = oy + ky - pad;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < 3; kx++) {
            const ix = ox + kx - pad;
            if (ix < 0 || ix >= w) continue;
            for (let ci = 0; ci < c; ci++) {
              const xi = ((b * h + iy) * w + ix) * c + ci;
              const wi = ((ky * 3 + kx) * c + ci) * f;
              const xv = x[xi];
              let back = 0;
              for (let co = 0; co < f; co++) {
                y[at + co] += xv * params[wi + co];
                back += dz[at + co] * params[wi + co];
                dw[wi + co] += dz[at + co] * xv;
              }
              dx[xi] += back;
            }
          }
        }
      }
    }
  }
  return { y, dx, dw };
}

function printLayer(report: LayerReport, algorithms: readonly Algorithm[]): void {
  const plan = report.rule;
  const rule =
    plan === 'direct'
      ? 'direct'
      : `F(${plan.tile}x${plan.tile}) for ${PASSES.filter((p) => plan[passKey(p)]).join(', ')}`;
  console.log(`\n${report.layer}, input ${report.input.join('x')}; the rule: ${rule}`);
  const names = algorithms.map((a) => a.name);
  const cell = (value: number | undefined, digits = 2, suffix = '') =>
    value === undefined ? '-' : `${value.toFixed(digits)}${suffix}`;
  console.log(
    `${'ms (median)'.padEnd(16)}${names.map((n) => n.padStart(9)).join('')}  ${names
      .slice(1)
      .map((n) => `direct/${n}`.padStart(15))
      .join('')}`,
  );
  for (const pass of [...PASSES, 'total'] as const) {
    console.log(
      `${(pass === 'total' ? 'passes together' : pass).padEnd(16)}${names.map((n) => cell(report.ms[n][pass]).padStart(9)).join('')}  ${names
        .slice(1)
        .map((n) => cell(report.speedup[n][pass], 2, 'x').padStart(15))
        .join('')}`,
    );
  }
  console.log("(passes together: the median of the rounds' sums; its ratio, the median of the rounds' ratios)");
  console.log('error against float64 (largest error / largest value, RMS error / RMS value):');
  for (const n of names) {
    const e = report.error[n];
    const text = PASSES.filter((p) => e[p] !== undefined)
      .map((p) => `${p} ${e[p]?.max.toExponential(1)}, ${e[p]?.rms.toExponential(1)}`)
      .join(';  ');
    console.log(`  ${n.padEnd(8)} ${text}`);
  }
}

function passKey(pass: ConvPass): 'forward' | 'inputGradient' | 'filterGradient' {
  return pass === 'forward' ? 'forward' : pass === 'input gradient' ? 'inputGradient' : 'filterGradient';
}

main().catch((error: unknown) => {
  console.error(isUserError(error) ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
