import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../dist/src/coordinator/checkpoint.js';
import { loadFashionMnist, train } from '../dist/src/index.js';
import { loadModel, saveModel } from '../dist/src/model/files.js';
import { modelInput } from '../dist/src/model/keras.js';
import { keeps } from '../dist/src/model/layers/dropout.js';
import { learningRateAt } from '../dist/src/optimizer/schedule.js';
import { Rng } from '../dist/src/rng.js';
import { shardOf } from '../dist/src/sharding.js';
import { type CliResult, ROOT, runNode, tempDir } from './helpers.js';
import { NO_TORCH, python, realSubset, runPython, TORCH_REQUIRED } from './pytorch-helpers.js';

// `npm run export -- --format pytorch` and `npm run import`: the network in PyTorch computes what
// ours computes; a round trip gives our files back bit for bit; bad input is one line. The
// continuation under DDP is test/ddp.test.ts's.

const TRAIN_CLI = join(ROOT, 'dist', 'scripts', 'train.js');
const EXPORT_CLI = join(ROOT, 'dist', 'scripts', 'export.js');
const IMPORT_CLI = join(ROOT, 'dist', 'scripts', 'import.js');

/**
 * Every layer kind, and each option of each: same and valid padding (an even kernel's same pads
 * unevenly), relu and linear (given activation first), a pool of 3 that drops a partial window,
 * dropout on images and on vectors, batch normalisation of images and of vectors (its momentum
 * and epsilon given, so that the moving statistics catch up within the epoch), a relu of its own.
 */
const EVERY_KIND =
  'conv:6:4:same,pool,conv:8:3:linear:valid,bn:0.9,relu,dropout:0.2,pool:3,flatten,dense:32:linear,bn:0.9:0.01,dropout:0.5,dense:10';

let data: string;
let mlpDir: string;
let cnnDir: string;

beforeAll(async () => {
  // 2,000 real training images, and the whole test set, which the logits are compared on.
  data = realSubset(2000, 10_000);
  const runs = tempDir('pytorch-runs-');
  mlpDir = join(runs, 'mlp');
  cnnDir = join(runs, 'cnn');
  const trainCli = (out: string, ...flags: string[]) =>
    runNode(TRAIN_CLI, ['--data', data, '--epochs', '1', '--workers', '2', '--quiet', '--out', out, ...flags]);
  for (const result of [await trainCli(mlpDir), await trainCli(cnnDir, '--layers', EVERY_KIND, '--batch-size', '64')]) {
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  }
}, 300_000);

/** The CLI's result for a failure: exit code 1 and one line on stderr, which is returned. */
function oneLine(result: CliResult): string {
  expect(result.code).toBe(1);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  return lines[0];
}

async function exported(model: string): Promise<string> {
  const out = join(tempDir('pytorch-export-'), 'pt');
  const result = await runNode(EXPORT_CLI, ['--model', model, '--format', 'pytorch', '--out', out]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  // Every placeholder of the templates filled in.
  expect(readFileSync(join(out, 'README.md'), 'utf8')).not.toMatch(/\{\{/);
  expect(readFileSync(join(out, 'model.py'), 'utf8')).not.toMatch(/__[A-Z]+__/);
  return out;
}

describe('npm run export, then npm run import without training: our files back, bit for bit', () => {
  it('a finished run (no checkpoint): the weights, the history and the test scores', async () => {
    const pt = await exported(mlpDir);
    const back = join(tempDir('pytorch-back-'), 'back');
    const result = await runNode(IMPORT_CLI, ['--from', pt, '--out', back, '--data', data, '--workers', '2']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(readFileSync(join(back, 'weights.bin')).equals(readFileSync(join(mlpDir, 'weights.bin')))).toBe(true);
    const before = JSON.parse(readFileSync(join(mlpDir, 'metrics.json'), 'utf8'));
    const after = JSON.parse(readFileSync(join(back, 'metrics.json'), 'utf8'));
    expect(after.epochs).toEqual(before.epochs);
    // The same evaluation of the same parameters on as many workers: the same numbers.
    expect([after.testLoss, after.testAccuracy]).toEqual([before.testLoss, before.testAccuracy]);
    expect(existsSync(join(back, 'checkpoint.bin'))).toBe(false);
    expect(result.stdout).toMatch(/^Test accuracy: \d\.\d{4} \(the run's own evaluation after epoch 1: \d\.\d{4}\)$/m);
  });

  it("a run stopped mid-epoch: checkpoint.bin, Adam's state and the epoch's order included, the same bytes", async () => {
    const dir = tempDir('pytorch-stopped-');
    const dataset = await loadFashionMnist({ dir: data, env: {} });
    // Asked to stop before it starts, a run stops after its first step: mid-epoch, Adam's moments set.
    const interrupted = await train({
      data: dataset,
      model: EVERY_KIND,
      epochs: 2,
      batchSize: 64,
      workers: 2,
      seed: 4,
      checkpointDir: dir,
      interrupt: AbortSignal.abort(),
    }).catch((error: unknown) => error);
    expect((interrupted as Error).name).toBe('InterruptedError');
    const pt = await exported(dir);
    expect(JSON.parse(readFileSync(join(pt, 'run.json'), 'utf8')).state).toMatchObject({ epochsDone: 0, stepsDone: 1 });
    const back = join(tempDir('pytorch-back-'), 'back');
    const result = await runNode(IMPORT_CLI, ['--from', pt, '--out', back, '--data', data, '--workers', '2']);
    expect(result.code).toBe(0);
    expect(readFileSync(join(back, 'checkpoint.bin')).equals(readFileSync(join(dir, 'checkpoint.bin')))).toBe(true);
    expect(result.stdout).toContain(`Continue it here: npm run train -- --resume ${back}`);
    const checkpoint = await readCheckpoint(back);
    expect(checkpoint.adam.m.some((m) => m !== 0)).toBe(true);
  });

  it("a folder of version 1, from before the layers' state (its networks had none), with its data block or from before it: the same files back", async () => {
    const pt = await exported(mlpDir);
    const run = JSON.parse(readFileSync(join(pt, 'run.json'), 'utf8'));
    expect(run.version).toBe(2);
    expect(Object.keys(run.data)).toEqual(['metadata', 'sha256', 'pictures']);
    const { data: _, ...withoutData } = run;
    for (const json of [
      { ...run, version: 1 },
      { ...withoutData, version: 1 },
    ]) {
      writeFileSync(join(pt, 'run.json'), JSON.stringify(json));
      const back = join(tempDir('pytorch-back-'), 'back');
      const result = await runNode(IMPORT_CLI, ['--from', pt, '--out', back, '--data', data, '--workers', '2']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(readFileSync(join(back, 'weights.bin')).equals(readFileSync(join(mlpDir, 'weights.bin')))).toBe(true);
    }
  });
});

/** The first 8 bytes, the header (JSON) and the rest of a safetensors file. */
function splitSafetensors(bytes: Buffer): {
  header: Record<string, { data_offsets: number[] } & Record<string, unknown>>;
  body: Buffer;
} {
  const length = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + length).toString()), body: bytes.subarray(8 + length) };
}

function joinSafetensors(header: object, body: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, body]);
}

describe('bad input: one line, exit code 1, no --out', () => {
  it.each([
    [['--format', 'onnx', '--model', 'x', '--out', 'y'], /^error: --format must be pytorch, got "onnx"$/],
    [['--out', 'y'], /^error: --model DIR is required: a directory written by npm run train$/],
    [['--model', '/nonexistent', '--out', 'OUT'], /^error: \/nonexistent: no model.json or checkpoint.bin in it/],
    [['--model', 'x', '--wrong'], /^error: unknown flag --wrong \(see --help\)$/],
  ])('npm run export %j', async (args, message) => {
    const out = join(tempDir(), 'out');
    const result = await runNode(
      EXPORT_CLI,
      (args as string[]).map((a) => (a === 'OUT' ? out : a)),
    );
    expect(oneLine(result)).toMatch(message as RegExp);
    expect(existsSync(out)).toBe(false);
  });

  it('npm run export of a model with a layer PyTorch is not given (a tanh), and into a directory that is not empty', async () => {
    await tf.ready();
    const dir = tempDir();
    const model = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [28, 28] }),
        tf.layers.dense({ units: 8, activation: 'tanh', name: 'hidden' }),
        tf.layers.dense({ units: 10, activation: 'softmax' }),
      ],
    });
    await saveModel(model, dir);
    model.dispose();
    const out = join(tempDir(), 'out');
    expect(oneLine(await runNode(EXPORT_CLI, ['--model', dir, '--out', out]))).toMatch(
      new RegExp(
        `^error: ${dir}/model.json: layer 2 \\(Dense "hidden"\\) has activation "tanh"; supported: relu, linear, softmax`,
      ),
    );
    expect(existsSync(out)).toBe(false);
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    expect(oneLine(await runNode(EXPORT_CLI, ['--model', mlpDir, '--out', out]))).toBe(
      `error: --out "${out}" is not empty; pick a new directory`,
    );
  });

  it("npm run export of a checkpoint.bin of the format before the layers' state", async () => {
    const dir = tempDir();
    const path = join(dir, 'checkpoint.bin');
    writeFileSync(path, Buffer.concat([Buffer.from('FMNISTCK2'), Buffer.alloc(64)]));
    const out = join(tempDir(), 'out');
    expect(oneLine(await runNode(EXPORT_CLI, ['--model', dir, '--out', out]))).toBe(
      `error: ${path}: a checkpoint of an earlier version of the trainer (format 2; this version reads format 3); resume it with the version that wrote it, or train again`,
    );
    expect(existsSync(out)).toBe(false);
  });

  /** An exported MLP to damage: its files, and a function that imports a copy with one file replaced. */
  let pt: string;
  beforeAll(async () => {
    pt = await exported(mlpDir);
  });
  const importWith = async (file: string, bytes: Buffer | string) => {
    const copy = tempDir('pytorch-damaged-');
    for (const name of ['run.json', 'model.safetensors']) writeFileSync(join(copy, name), readFileSync(join(pt, name)));
    writeFileSync(join(copy, file), bytes);
    const out = join(tempDir(), 'out');
    const line = oneLine(await runNode(IMPORT_CLI, ['--from', copy, '--out', out, '--data', data]));
    expect(existsSync(out)).toBe(false);
    return line.replace(copy, 'DIR');
  };
  const weights = () => readFileSync(join(pt, 'model.safetensors'));
  const DAMAGED = 'the PyTorch run folder is damaged: export the run again, or copy a folder whole';

  it('npm run import of a run.json with a layer kind the project does not have', async () => {
    const run = JSON.parse(readFileSync(join(pt, 'run.json'), 'utf8'));
    run.model.layers = 'flatten,batchnorm,dense:128,dense:10';
    expect(await importWith('run.json', JSON.stringify(run))).toBe(
      'error: DIR/run.json: model.layers: unknown layer "batchnorm" at position 2; expected conv, pool, flatten, dense, dropout, bn or relu',
    );
  });

  it('npm run import of a run.json of a version it does not read', async () => {
    const run = JSON.parse(readFileSync(join(pt, 'run.json'), 'utf8'));
    expect(await importWith('run.json', JSON.stringify({ ...run, version: 3 }))).toBe(
      'error: DIR/run.json: format "fashion-mnist-parallel/pytorch", version 3; expected fashion-mnist-parallel/pytorch, version 2, as npm run export writes',
    );
  });

  it('npm run import of a run.json of version 2 without its data block', async () => {
    const { data: _, ...run } = JSON.parse(readFileSync(join(pt, 'run.json'), 'utf8'));
    expect(await importWith('run.json', JSON.stringify(run))).toBe(
      `error: DIR/run.json: data is missing, and a version 2 run.json has it; ${DAMAGED}`,
    );
  });

  it('npm run import of damaged safetensors: truncated, a header past the file, overlapping offsets, a wrong dtype or shape, a NaN', async () => {
    const bytes = weights();
    expect(await importWith('model.safetensors', bytes.subarray(0, bytes.length - 100))).toBe(
      `error: DIR/model.safetensors: truncated: its tensors take ${bytes.length - 8 - Number(bytes.readBigUInt64LE(0))} bytes after the header, and the file holds ${bytes.length - 108 - Number(bytes.readBigUInt64LE(0))}; ${DAMAGED}`,
    );
    const past = Buffer.from(bytes);
    past.writeBigUInt64LE(BigInt(bytes.length + 10));
    expect(await importWith('model.safetensors', past)).toBe(
      `error: DIR/model.safetensors: the header's length (${bytes.length + 10} bytes) runs past the end of the file (${bytes.length} bytes); ${DAMAGED}`,
    );
    const { header, body } = splitSafetensors(bytes);
    const edited = (edit: (h: typeof header) => void, to = body) => {
      const copy = structuredClone(header);
      edit(copy);
      return joinSafetensors(copy, to);
    };
    // Tensors lie in name order: layers.1.bias, layers.1.weight, layers.2.bias (10 floats), ...
    const weight = header['layers.1.weight'].data_offsets;
    const moved = [weight[1] - 40, weight[1]];
    expect(
      await importWith(
        'model.safetensors',
        edited((h) => (h['layers.2.bias'].data_offsets = moved)),
      ),
    ).toBe(
      `error: DIR/model.safetensors: the bytes of tensor "layers.2.bias" [${moved[0]}, ${moved[1]}) overlap those of "layers.1.weight" [${weight[0]}, ${weight[1]}); ${DAMAGED}`,
    );
    expect(
      await importWith(
        'model.safetensors',
        edited((h) => (h['layers.1.bias'].dtype = 'I32')),
      ),
    ).toBe(
      `error: DIR/model.safetensors: tensor "layers.1.bias" is I32, but layer 2 (dense:128) needs F32; ${DAMAGED}`,
    );
    expect(
      await importWith(
        'model.safetensors',
        edited((h) => (h['layers.1.bias'].shape = [64, 2])),
      ),
    ).toBe(
      `error: DIR/model.safetensors: tensor "layers.1.bias" has the shape [64, 2], but layer 2 (dense:128) needs [128]; ${DAMAGED}`,
    );
    expect(
      await importWith(
        'model.safetensors',
        edited((h) => (h['layers.1.weight'].shape = [128, 783])),
      ),
    ).toBe(
      `error: DIR/model.safetensors: tensor "layers.1.weight": ${weight[1] - weight[0]} bytes for F32 values of shape [128, 783], which take ${128 * 783 * 4}; ${DAMAGED}`,
    );
    const nan = Buffer.from(body);
    nan.writeFloatLE(NaN, header['layers.2.bias'].data_offsets[0]);
    expect(
      await importWith(
        'model.safetensors',
        edited(() => undefined, nan),
      ),
    ).toBe(`error: DIR/model.safetensors: tensor "layers.2.bias" holds NaN or infinite values; ${DAMAGED}`);
    expect(
      await importWith(
        'model.safetensors',
        edited((h) => ((h as Record<string, unknown>).__metadata__ = { adamSteps: '7' })),
      ),
    ).toBe(
      `error: DIR/model.safetensors: written at Adam step "7", and run.json at 0 (stopped while saving?); ${DAMAGED}`,
    );
  });
});

describe.skipIf(python === undefined)(`the network in PyTorch${python ? '' : ` (${NO_TORCH})`}`, () => {
  /** Logits of the 10,000 test images: the exported model.py's, and our saved model's, as tfjs loads it. */
  async function bothLogits(dir: string): Promise<{ ours: Float32Array; torch: Float32Array; labels: Uint8Array }> {
    const pt = await exported(dir);
    const file = join(tempDir(), 'logits.f32');
    const code = `
import sys, torch
sys.path.insert(0, ${JSON.stringify(pt)})
import model, train_ddp
network = model.load()
network.eval()
images, _ = train_ddp.load_split(${JSON.stringify(data)}, train_ddp.FILES[2], train_ddp.FILES[3])
with torch.no_grad():
    logits = torch.cat([network(train_ddp.as_input(images[i : i + 1000])) for i in range(0, len(images), 1000)])
open(${JSON.stringify(file)}, "wb").write(model.tensor_bytes(logits))
`;
    const result = await runPython(['-c', code]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const torch = new Float32Array(new Uint8Array(readFileSync(file)).buffer);
    const { test } = await loadFashionMnist({ dir: data, env: {} });
    const model = await loadModel(dir);
    const n = model.layers.length;
    const body = tf.model({ inputs: model.inputs, outputs: model.layers[n - 2].output as tf.SymbolicTensor });
    const [kernel, bias] = model.layers[n - 1].getWeights();
    const pixels = Float32Array.from(test.images as Uint8Array, (v) => v / 255);
    const ours = tf.tidy(() => {
      const x = modelInput(model, tf.tensor3d(pixels, [test.count, 28, 28]));
      return tf.add(tf.matMul(body.predict(x, { batchSize: 1000 }) as tf.Tensor2D, kernel as tf.Tensor2D), bias);
    });
    const values = ours.dataSync() as Float32Array;
    ours.dispose();
    model.dispose();
    return { ours: values, torch, labels: test.labels };
  }

  const argmaxes = (logits: Float32Array, classes = 10) =>
    Array.from({ length: logits.length / classes }, (_, r) => {
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
      return best;
    });

  it.each([
    ['a trained MLP', () => mlpDir],
    ['a trained CNN with every layer kind', () => cnnDir],
  ])('%s: its logits on the 10,000 test images equal ours to 1e-4, and so does its accuracy', async (_, dir) => {
    const { ours, torch, labels } = await bothLogits(dir());
    expect(torch.length).toBe(10_000 * 10);
    let worst = 0;
    for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - torch[i]));
    expect(worst).toBeLessThan(1e-4);
    const correct = (answers: number[]) => answers.filter((a, i) => a === labels[i]).length;
    const accuracy = correct(argmaxes(torch)) / 10_000;
    expect(correct(argmaxes(torch))).toBe(correct(argmaxes(ours)));
    // The accuracy our trainer reported for the run.
    expect(accuracy).toBe(JSON.parse(readFileSync(join(dir(), 'metrics.json'), 'utf8')).testAccuracy);
    // Trained: far from chance (0.1).
    expect(accuracy).toBeGreaterThan(0.3);
  });

  it("its ports of the project's generator, dropout hash and sharding give our numbers bit for bit, its schedule to cos's last bits", async () => {
    const pt = await exported(cnnDir);
    const cases = { states: [0, 1, 123_456_789, 2 ** 32 - 1], count: 1000 };
    const masks = [
      { rate: 0.5, seed: 1, layer: 3, step: 7, samples: [0, 1, 59_999, 12_345] },
      { rate: 0.2, seed: 2 ** 32 - 1, layer: 0, step: 2 ** 30, samples: [5, 7] },
      { rate: 0.9, seed: 0, layer: 11, step: 0, samples: [3] },
    ];
    const units = 300;
    const code = `
import json, math, sys, torch
sys.path.insert(0, ${JSON.stringify(pt)})
import model, train_ddp
out = {"shuffles": [], "masks": [], "shards": [], "rates": []}
for state in ${JSON.stringify(cases.states)}:
    rng = train_ddp.Rng(state)
    first = rng.shuffled(${cases.count})
    out["shuffles"].append([first, rng.shuffled(7), rng.state])
for m in ${JSON.stringify(masks)}:
    units = model.imul(torch.arange(${units}, dtype=torch.int64), model.GOLDEN)
    keep = model.keep_mask(m["seed"], m["layer"], m["step"], torch.tensor(m["samples"]), units, math.ceil(m["rate"] * 4294967296))
    out["masks"].append(keep.to(torch.int64).tolist())
out["shards"] = [train_ddp.shard_of(s, c, i, n) for s, c, n in [(0, 128, 2), (128, 3, 4), (59_904, 96, 3)] for i in range(n)]
out["rates"] = [train_ddp.learning_rate_at("cosine", 0.003, s, 4690) for s in range(0, 4691, 7)]
print(json.dumps(out))
`;
    const result = await runPython(['-c', code]);
    expect(result.stderr).toBe('');
    const out = JSON.parse(result.stdout);
    cases.states.forEach((state, i) => {
      const rng = new Rng(state);
      const order = (n: number) => {
        const values = Int32Array.from({ length: n }, (_, k) => k);
        rng.shuffle(values);
        return [...values];
      };
      expect(out.shuffles[i]).toEqual([order(cases.count), order(7), rng.state]);
    });
    masks.forEach((m, i) => {
      const ours = m.samples.map((sample) =>
        Array.from({ length: units }, (_, u) => (keeps(m.rate, m.seed, m.layer, m.step, sample, u) ? 1 : 0)),
      );
      expect(out.masks[i]).toEqual(ours);
    });
    const shards = [
      [0, 128, 2],
      [128, 3, 4],
      [59_904, 96, 3],
    ].flatMap(([s, c, n]) =>
      Array.from({ length: n }, (_, i) => shardOf(s, c, i, n)).map(({ start, end }) => [start, end]),
    );
    expect(out.shards).toEqual(shards);
    out.rates.forEach((rate: number, i: number) => {
      const ours = learningRateAt('cosine', 0.003, i * 7, 4690);
      // Python's cos (the C library's) and V8's may differ in the last bit.
      expect(Math.abs(rate - ours)).toBeLessThanOrEqual(1e-15 * 0.003);
    });
  });

  it('train_ddp.py refuses a damaged folder with one line and exit code 1', async () => {
    const pt = await exported(mlpDir);
    const bytes = readFileSync(join(pt, 'model.safetensors'));
    writeFileSync(join(pt, 'model.safetensors'), bytes.subarray(0, bytes.length - 4));
    const result = await runPython([join(pt, 'train_ddp.py'), '--epochs', '1', '--data', data]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^error: .*model\.safetensors: not a usable safetensors file/);
  });
});

describe.runIf(TORCH_REQUIRED)('where torch is required (CI)', () => {
  it('finds a python3 with torch', () => {
    expect(python, 'PEERS_REQUIRE_TORCH=1 but no python3 imports torch').toBeDefined();
  });
});
