import { createHash } from 'node:crypto';
import type { Dataset } from './dataset.js';

/**
 * SHA-256 of what a run trained and was tested on: each split's image values as stored (grey
 * levels or red, green and blue levels, NHWC), then its labels, train before test. metrics.json
 * records it, so that two runs (bench:peers's two sides, a run and its continuation under
 * train_ddp.py, which computes it the same way) can be shown to have read the same data.
 */
export function dataSha256(data: Pick<Dataset, 'train' | 'test'>): string {
  const hash = createHash('sha256');
  for (const { images, labels } of [data.train, data.test]) {
    hash.update(new Uint8Array(images.buffer, images.byteOffset, images.byteLength));
    hash.update(labels);
  }
  return hash.digest('hex');
}
