import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../files.js';
import { decompress } from './idx.js';

/** The dataset's official mirror (from its README). */
export const FASHION_MNIST_MIRROR = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com';

/**
 * SHA-256 of each file's decompressed IDX content. The compressed bytes differ between the mirror
 * and Debian's repacked copies; the content does not.
 */
export const FASHION_MNIST_SHA256: Readonly<Record<string, string>> = {
  'train-images-idx3-ubyte': 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
  'train-labels-idx1-ubyte': 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
  't10k-images-idx3-ubyte': '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
  't10k-labels-idx1-ubyte': '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
};

export interface DownloadProgress {
  readonly file: string;
  readonly receivedBytes: number;
  /** From the response's Content-Length; undefined when the server does not send one. */
  readonly totalBytes: number | undefined;
}

export interface DownloadOptions {
  /** Directory the four `.gz` files are written to. */
  dir: string;
  /** Base URL; each file is fetched from `<mirror>/<file>.gz`. */
  mirror: string;
  onProgress?: (progress: DownloadProgress) => void;
}

/**
 * Downloads the four Fashion-MNIST files into `dir`. Each is written (atomically) only after its
 * decompressed content matched the published SHA-256, so a failed or corrupted download never
 * leaves a file that looks like data.
 */
export async function downloadFashionMnist(options: DownloadOptions): Promise<void> {
  await mkdir(options.dir, { recursive: true });
  for (const [file, sha256] of Object.entries(FASHION_MNIST_SHA256)) {
    const url = `${options.mirror.replace(/\/+$/, '')}/${file}.gz`;
    const bytes = await fetchBytes(url, file, options.onProgress);
    const actual = createHash('sha256').update(decompress(bytes, url)).digest('hex');
    if (actual !== sha256) {
      throw new Error(`${url} has SHA-256 ${actual} after decompression, expected ${sha256}`);
    }
    writeFileAtomically(join(options.dir, `${file}.gz`), [bytes]);
  }
}

async function fetchBytes(url: string, file: string, onProgress?: (p: DownloadProgress) => void): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
  if (!response.ok || response.body === null) throw new Error(`${url} answered HTTP ${response.status}`);
  const header = response.headers.get('content-length');
  const totalBytes = header === null ? undefined : Number(header);
  const chunks: Uint8Array[] = [];
  let receivedBytes = 0;
  for await (const chunk of response.body) {
    chunks.push(chunk);
    receivedBytes += chunk.length;
    onProgress?.({ file, receivedBytes, totalBytes });
  }
  return Buffer.concat(chunks);
}
