import type { Dataset } from '../data/dataset.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_FILES, fashionMnistSplit } from '../data/fashion-mnist-files.js';
import { decompressedLimit, isGzip, parseIdx } from '../data/idx-parse.js';
import { DataError } from '../errors.js';

/** How a file of the dataset is coming along. */
export interface FetchProgress {
  readonly file: string;
  readonly receivedBytes: number;
  /** From the response's Content-Length; undefined when the server does not send one. */
  readonly totalBytes: number | undefined;
}

/**
 * Fashion-MNIST from a server that serves the four files under `base` (web/server.ts serves those
 * the Node locator finds, gzipped or not): each is decompressed when it is gzip (with
 * DecompressionStream), then parsed and checked as the Node reader does, into shared memory.
 */
export async function fetchFashionMnist(base: URL, onProgress?: (progress: FetchProgress) => void): Promise<Dataset> {
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(
    FASHION_MNIST_FILES.map(async (file, i) => {
      const url = new URL(file, base).href;
      const bytes = await gunzipIfGzip(await fetchBytes(url, file, onProgress), url);
      return { url, idx: parseIdx(bytes, url, i % 2 === 0 ? 3 : 1) };
    }),
  );
  const split = (images: typeof trainImages, labels: typeof trainLabels) =>
    fashionMnistSplit(images.idx, labels.idx, { images: images.url, labels: labels.url });
  return {
    train: split(trainImages, trainLabels),
    test: split(testImages, testLabels),
    height: 28,
    width: 28,
    classNames: FASHION_MNIST_CLASSES,
  };
}

async function fetchBytes(url: string, file: string, onProgress?: (progress: FetchProgress) => void) {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new DataError(`cannot reach ${url}: ${(error as Error).message}`);
  }
  if (!response.ok || response.body === null) throw new DataError(`${url} answered HTTP ${response.status}`);
  const header = response.headers.get('content-length');
  const totalBytes = header === null ? undefined : Number(header);
  let receivedBytes = 0;
  return readAll(response.body, Infinity, (chunk) => {
    receivedBytes += chunk.length;
    onProgress?.({ file, receivedBytes, totalBytes });
  });
}

/**
 * The bytes, inflated when they are gzip, as idx.ts's `decompress` does in Node: inflating stops as
 * soon as the output passes what deflate could encode in that many bytes (a gzip bomb).
 */
async function gunzipIfGzip(bytes: Uint8Array<ArrayBuffer>, url: string): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  const limit = decompressedLimit(bytes.length);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  try {
    return await readAll(stream, limit);
  } catch (error) {
    if (error instanceof DataError)
      throw new DataError(`${url}: decompresses to more than ${limit} bytes; not reading it`);
    throw new DataError(`${url}: not a valid gzip file (${(error as Error).message}); get it again`);
  }
}

/** A stream's bytes in one array; throws a DataError past `limit` bytes, without reading further. */
async function readAll(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > limit) {
      await reader.cancel();
      throw new DataError(`more than ${limit} bytes`);
    }
    chunks.push(value);
    onChunk?.(value);
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}
