import type { Endpoint } from 'comlink';
import { createRequire } from 'node:module';
import type { MessagePort, Worker } from 'node:worker_threads';

/**
 * comlink's Node adapter. comlink has no "exports" map and ships the adapter as UMD, whose default
 * export Node's ESM loader and TypeScript read differently; require() is unambiguous.
 */
export const nodeEndpoint = createRequire(import.meta.url)('comlink/dist/umd/node-adapter.js') as (
  port: MessagePort | Worker,
) => Endpoint;
