import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFashionMnist } from '../dist/src/data/download.js';
import { FASHION_MNIST_FILES } from '../dist/src/data/fashion-mnist.js';
import { loadFashionMnist } from '../dist/src/index.js';
import { DEBIAN_DIR, gzip, tempDir } from './helpers.js';

// A stand-in for the dataset's mirror on 127.0.0.1: /good/ serves Debian's files, /corrupt/ the same
// files with one pixel changed (valid gzip, wrong content), /truncated/ gzip files cut short,
// /partial/ Debian's files but for the third one fetched (the test images), which is corrupt.
let server: Server;
let base: string;
const roots: Record<string, string> = {
  good: DEBIAN_DIR,
  corrupt: tempDir(),
  truncated: tempDir(),
  partial: tempDir(),
};

beforeAll(async () => {
  for (const file of FASHION_MNIST_FILES) {
    const bytes = readFileSync(join(DEBIAN_DIR, `${file}.gz`));
    const content = gunzipSync(bytes);
    content[content.length - 1] ^= 1;
    writeFileSync(join(roots.corrupt, `${file}.gz`), gzip(content));
    writeFileSync(join(roots.truncated, `${file}.gz`), bytes.subarray(0, bytes.length >> 1));
    const source = file === 't10k-images-idx3-ubyte' ? roots.corrupt : DEBIAN_DIR;
    copyFileSync(join(source, `${file}.gz`), join(roots.partial, `${file}.gz`));
  }
  server = createServer((request, response) => {
    const [, root, name] = (request.url ?? '').split('/');
    const path = roots[root] === undefined ? undefined : join(roots[root], name);
    if (path === undefined || !existsSync(path)) {
      response.writeHead(404).end();
      return;
    }
    const body = readFileSync(path);
    response.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('downloadFashionMnist', () => {
  it('downloads the four files, verified, and reports progress', async () => {
    const dir = join(tempDir(), 'nested', 'fashion-mnist');
    const seen = new Set<string>();
    await downloadFashionMnist({ dir, mirror: `${base}/good/`, onProgress: (p) => seen.add(p.file) });
    expect(readdirSync(dir).sort()).toEqual(FASHION_MNIST_FILES.map((f) => `${f}.gz`).sort());
    expect(seen).toEqual(new Set(FASHION_MNIST_FILES));
    for (const file of FASHION_MNIST_FILES) {
      expect(readFileSync(join(dir, `${file}.gz`)).equals(readFileSync(join(DEBIAN_DIR, `${file}.gz`)))).toBe(true);
    }
  });

  it('refuses content whose SHA-256 differs and leaves no file behind', async () => {
    const dir = tempDir();
    await expect(downloadFashionMnist({ dir, mirror: `${base}/corrupt` })).rejects.toThrow(
      /train-images-idx3-ubyte\.gz has SHA-256 [0-9a-f]{64} after decompression, expected c59f468a/,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a truncated gzip and a missing file, leaving no file behind', async () => {
    const dir = tempDir();
    await expect(downloadFashionMnist({ dir, mirror: `${base}/truncated` })).rejects.toThrow(
      /not a valid gzip file \(unexpected end of file\)/,
    );
    await expect(downloadFashionMnist({ dir, mirror: `${base}/missing` })).rejects.toThrow(/answered HTTP 404/);
    expect(readdirSync(dir)).toEqual([]);
  });
  it('keeps the files verified before a later one failed, whole, and nothing of the one that failed', async () => {
    const dir = tempDir();
    await expect(downloadFashionMnist({ dir, mirror: `${base}/partial` })).rejects.toThrow(
      /t10k-images-idx3-ubyte\.gz has SHA-256 [0-9a-f]{64} after decompression, expected 5b4141f0/,
    );
    const before = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'];
    expect(readdirSync(dir).sort()).toEqual(before);
    for (const file of before)
      expect(readFileSync(join(dir, file)).equals(readFileSync(join(DEBIAN_DIR, file)))).toBe(true);
    // A later attempt from a mirror that has them all completes the directory, and it loads.
    await downloadFashionMnist({ dir, mirror: `${base}/good` });
    expect((await loadFashionMnist({ dir, env: {} })).test.count).toBe(10_000);
  });
});

describe('loadFashionMnist when no directory has the data', () => {
  it('downloads into the download directory, then loads', async () => {
    const downloadDir = join(tempDir(), 'data');
    const data = await loadFashionMnist({
      env: { FASHION_MNIST_MIRROR: `${base}/good` },
      searchDirs: [tempDir()],
      downloadDir,
    });
    expect(data.train.count).toBe(60_000);
    expect(readdirSync(downloadDir)).toHaveLength(4);
  });

  it('fails with one line naming the places tried, the mirror, the apt package and --data', async () => {
    const empty = tempDir();
    mkdirSync(join(empty, 'sub'));
    copyFileSync(join(DEBIAN_DIR, 't10k-labels-idx1-ubyte.gz'), join(empty, 't10k-labels-idx1-ubyte.gz'));
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const mirror = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const error = await loadFashionMnist({
      env: { FASHION_MNIST_MIRROR: mirror },
      searchDirs: [empty],
      downloadDir: join(empty, 'dl'),
    }).catch((e: Error) => e);
    expect((error as Error).name).toBe('DataError');
    expect((error as Error).message).toBe(
      `Fashion-MNIST is not in ${empty}, and downloading it from ${mirror} failed ` +
        `(cannot reach ${mirror}/train-images-idx3-ubyte.gz: ECONNREFUSED). ` +
        "Install Debian's package (apt-get install dataset-fashion-mnist), or pass --data DIR with the four files.",
    );
    expect((error as Error).message).not.toContain('\n');
  });
});
