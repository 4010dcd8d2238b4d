import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gzip, idxBytes, runNode, tempDir, tinyDataset, TRAIN_CLI } from './helpers.js';

/** Data directories that are wrong in one way each. */
function brokenData(kind: 'truncated gzip' | 'wrong magic' | 'count mismatch'): string {
  const dir = tinyDataset({ testImages: kind === 'count mismatch' ? 4 : 5 });
  const file = join(dir, 'train-images-idx3-ubyte.gz');
  if (kind === 'truncated gzip') {
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 10));
  }
  if (kind === 'wrong magic') {
    writeFileSync(file, gzip(idxBytes([12, 28, 28], new Uint8Array(12 * 784), 0x0801)));
  }
  return dir;
}

const cases: [string, () => string[], RegExp][] = [
  ['--workers 0', () => ['--workers', '0'], /^error: --workers must be an integer between 1 and 64, got "0"$/],
  ['--workers -1', () => ['--workers', '-1'], /^error: --workers must be an integer between 1 and 64, got "-1"$/],
  ['--workers abc', () => ['--workers', 'abc'], /^error: --workers must be an integer between 1 and 64, got "abc"$/],
  ['--workers 1000', () => ['--workers', '1000'], /^error: --workers must be an integer between 1 and 64, got "1000"$/],
  ['--epochs 0', () => ['--epochs', '0'], /^error: --epochs must be an integer between 1 and 100000, got "0"$/],
  [
    '--batch-size 0',
    () => ['--batch-size', '0'],
    /^error: --batch-size must be an integer between 1 and 1000000, got "0"$/,
  ],
  ['--lr abc', () => ['--lr', 'abc'], /^error: --lr must be a number greater than 0 and at most 1000000, got "abc"$/],
  [
    '--hidden 128,x',
    () => ['--hidden', '128,x'],
    /^error: --hidden must be a list of up to 16 layer widths, each an integer between 1 and 8192, got "128,x"$/,
  ],
  ['an unknown flag', () => ['--wrokers', '2'], /^error: unknown flag --wrokers \(see --help\)$/],
  [
    '--model vgg',
    () => ['--model', 'vgg'],
    /^error: --model must be mlp or cnn, got "vgg"; for other models, use --layers$/,
  ],
  [
    '--layers with an unknown layer',
    () => ['--layers', 'conv2:32:3,flatten,dense:10'],
    /^error: --layers: unknown layer "conv2" at position 1; expected conv, pool, flatten, dense, dropout, bn or relu$/,
  ],
  [
    '--layers that do not fit the images',
    () => ['--layers', 'conv:8:5,pool:8,pool:8,flatten,dense:10'],
    /^error: --layers: pool:8 at position 3 needs an input of at least 8x8, got 3x3x8$/,
  ],
  [
    '--layers without the output layer',
    () => ['--layers', 'conv:8:3,flatten,dense:32'],
    /^error: --layers: the last layer must be dense:10 with softmax \(one unit per class\), got dense:32$/,
  ],
  [
    '--model and --layers',
    () => ['--model', 'cnn', '--layers', 'flatten,dense:10'],
    /^error: give --model or --layers, not both$/,
  ],
  [
    '--hidden with --model cnn',
    () => ['--model', 'cnn', '--hidden', '64'],
    /^error: --hidden applies to --model mlp only; write the layers in --layers instead$/,
  ],
  [
    '--augment spin',
    () => ['--augment', 'spin'],
    /^error: --augment: unknown augmentation "spin"; expected flip, shift:N, or both, e.g. flip,shift:2$/,
  ],
  ...['shift:0', 'shift:-1', 'shift:x', 'shift:'].map((value): [string, () => string[], RegExp] => [
    `--augment ${value}`,
    () => ['--augment', value],
    new RegExp(`^error: --augment: shift:N needs N, a whole number of pixels from 1, got "${value}"$`),
  ]),
  [
    '--augment with a shift too large for the images',
    () => ['--augment', 'flip,shift:14'],
    /^error: --augment: shift:14 is too large for 28x28 images; at most shift:13 \(less than half the smaller side\)$/,
  ],
  [
    '--augment with a duplicate',
    () => ['--augment', 'flip,shift:1,flip'],
    /^error: --augment: "flip" is given twice in "flip,shift:1,flip"$/,
  ],
  [
    '--augment with --resume',
    () => ['--resume', tempDir(), '--augment', 'flip'],
    /^error: --resume keeps the run's settings from its checkpoint; drop --epochs, --augment$/,
  ],
  [
    'a data directory that does not exist',
    () => ['--data', '/nonexistent/fashion'],
    /^error: data directory "\/nonexistent\/fashion" does not exist or is not a directory$/,
  ],
  [
    'a truncated gzip',
    () => ['--data', brokenData('truncated gzip')],
    /^error: .*train-images-idx3-ubyte\.gz: not a valid gzip file \(unexpected end of file\); delete it and get it again$/,
  ],
  [
    'an IDX file with the wrong magic',
    () => ['--data', brokenData('wrong magic')],
    /^error: .*train-images-idx3-ubyte\.gz: wrong IDX magic number 0x00000801, expected 0x00000803/,
  ],
  [
    'images and labels of different counts',
    () => ['--data', brokenData('count mismatch')],
    /^error: .*t10k-labels-idx1-ubyte\.gz: 5 labels for the 4 images of .*; they must be the same split$/,
  ],
];

describe('npm run train with bad input', () => {
  it.each(cases)('%s: one line on stderr, exit 1, nothing in --out', async (_, args, message) => {
    const out = join(tempDir(), 'run');
    const { code, stdout, stderr } = await runNode(TRAIN_CLI, ['--epochs', '1', ...args(), '--out', out]);
    expect(code).toBe(1);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr.trimEnd()).toMatch(message);
    expect(stdout).not.toMatch(/Test accuracy/);
    // The run made --out (for bad data, after the flags were read) and took it away again.
    expect(existsSync(out)).toBe(false);
  });

  it('leaves an --out that already existed as it was', async () => {
    const out = tempDir();
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const { code } = await runNode(TRAIN_CLI, ['--epochs', '1', '--data', brokenData('wrong magic'), '--out', out]);
    expect(code).toBe(1);
    expect(readdirSync(out)).toEqual(['notes.txt']);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('refuses an --out that is a file before training', async () => {
    const file = join(tempDir(), 'taken');
    writeFileSync(file, 'x');
    const { code, stderr } = await runNode(TRAIN_CLI, ['--out', file]);
    expect(code).toBe(1);
    expect(stderr.trimEnd()).toBe(`error: --out "${file}" is a file, not a directory; pick another --out`);
  });

  it('refuses an --out that cannot be written before training (/proc: CI runs as root, whom chmod does not stop)', async () => {
    const { code, stderr } = await runNode(TRAIN_CLI, ['--out', '/proc/fmnist-test-out']);
    expect(code).toBe(1);
    expect(stderr.trimEnd()).toBe(
      'error: --out "/proc/fmnist-test-out" cannot be written (ENOENT); pick another --out',
    );
  });

  it('prints its flags with --help', async () => {
    const { code, stdout } = await runNode(TRAIN_CLI, ['--help']);
    expect(code).toBe(0);
    for (const flag of [
      '--workers',
      '--epochs',
      '--batch-size',
      '--lr',
      '--seed',
      '--hidden',
      '--data',
      '--out',
      '--quiet',
    ]) {
      expect(stdout).toContain(flag);
    }
  });
});
