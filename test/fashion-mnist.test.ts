import { createHash } from 'node:crypto';
import { mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FASHION_MNIST_SHA256 } from '../dist/src/data/download.js';
import { loadFashionMnist } from '../dist/src/index.js';
import { DEBIAN_DIR, idxBytes, ROOT, runNode, tempDir, tinyDataset } from './helpers.js';

const EXPLORE_CLI = join(ROOT, 'dist', 'scripts', 'explore.js');

describe('loadFashionMnist', () => {
  it('loads a directory of gzipped and raw files into shared memory', async () => {
    const data = await loadFashionMnist({ dir: tinyDataset({ rawTest: true }), env: {} });
    expect(data.train.count).toBe(12);
    expect(data.test.count).toBe(5);
    expect(data.train.images.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(data.train.labels.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([...data.test.labels]).toEqual([9, 8, 7, 6, 5]);
    expect(data.train.images[785]).toBe(785 % 251);
    expect(data.classNames[0]).toBe('T-shirt/top');
  });

  it('takes $FASHION_MNIST_DIR when no directory is given', async () => {
    const data = await loadFashionMnist({ env: { FASHION_MNIST_DIR: tinyDataset() } });
    expect(data.train.count).toBe(12);
  });

  it('says which directory is missing, or which files it lacks', async () => {
    await expect(loadFashionMnist({ dir: '/nonexistent/fm', env: {} })).rejects.toThrow(
      'data directory "/nonexistent/fm" does not exist or is not a directory',
    );
    await expect(loadFashionMnist({ env: { FASHION_MNIST_DIR: '/nonexistent/env' } })).rejects.toThrow(
      'FASHION_MNIST_DIR "/nonexistent/env" does not exist or is not a directory',
    );
    const empty = tempDir();
    mkdirSync(join(empty, 'x'));
    await expect(loadFashionMnist({ dir: empty, env: {} })).rejects.toThrow(
      `data directory "${empty}" lacks train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; a folder of your own pictures has a train/ folder instead`,
    );
  });

  it('rejects images and labels of different counts, and labels outside 0-9', async () => {
    const mismatched = tinyDataset({ testImages: 4 });
    await expect(loadFashionMnist({ dir: mismatched, env: {} })).rejects.toThrow(
      `${join(mismatched, 't10k-labels-idx1-ubyte.gz')}: 5 labels for the 4 images of ${join(mismatched, 't10k-images-idx3-ubyte.gz')}; they must be the same split`,
    );
    const badLabel = tinyDataset({ trainLabels: Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1]) });
    await expect(loadFashionMnist({ dir: badLabel, env: {} })).rejects.toThrow(
      'label 10 at index 10 is outside the 10 classes 0-9',
    );
  });

  it("looks in --data, then $FASHION_MNIST_DIR, then ./data/fashion-mnist, then Debian's directory (npm run explore)", async () => {
    // Three tiny datasets, told apart by their training labels: all T-shirt/top, all Trouser, all Pullover.
    const labelled = (c: number) => tinyDataset({ trainLabels: new Uint8Array(12).fill(c) });
    const flag = labelled(0);
    const env = labelled(1);
    const cwd = tempDir();
    mkdirSync(join(cwd, 'data'));
    renameSync(labelled(2), join(cwd, 'data', 'fashion-mnist'));
    /** What explore found: the one class of a tiny set, or "60000 images" for Debian's. */
    const found = async (args: string[], where: { cwd: string; dir: string }) => {
      const { code, stdout, stderr } = await runNode(EXPLORE_CLI, [...args, '--out', tempDir()], {
        cwd: where.cwd,
        env: { FASHION_MNIST_DIR: where.dir },
      });
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const images = /^Train Images Shape: \((\d+), 28, 28\)$/m.exec(stdout)?.[1];
      if (images !== '12') return `${images} images`;
      return /^\d (\S+)\s+12\s+\d+$/m.exec(stdout)?.[1];
    };
    expect(await found(['--data', flag], { cwd, dir: env })).toBe('T-shirt/top');
    expect(await found([], { cwd, dir: env })).toBe('Trouser');
    // An empty $FASHION_MNIST_DIR counts as unset.
    expect(await found([], { cwd, dir: '' })).toBe('Pullover');
    expect(await found([], { cwd: tempDir(), dir: '' })).toBe('60000 images');
  });

  it("loads the real dataset from Debian's package: 60,000 + 10,000 images, 6,000 / 1,000 per class, checksums as published", async () => {
    const data = await loadFashionMnist({ dir: DEBIAN_DIR, env: {} });
    expect(data.train.count).toBe(60_000);
    expect(data.test.count).toBe(10_000);
    for (const [split, perClass] of [
      [data.train, 6000],
      [data.test, 1000],
    ] as const) {
      const counts = new Array(10).fill(0);
      for (const label of split.labels) counts[label]++;
      expect(counts).toEqual(new Array(10).fill(perClass));
    }
    const idx = (dims: number[], bytes: Uint8Array) => createHash('sha256').update(idxBytes(dims, bytes)).digest('hex');
    expect(idx([60_000, 28, 28], data.train.images as Uint8Array)).toBe(
      FASHION_MNIST_SHA256['train-images-idx3-ubyte'],
    );
    expect(idx([10_000], data.test.labels)).toBe(FASHION_MNIST_SHA256['t10k-labels-idx1-ubyte']);
  });
});
