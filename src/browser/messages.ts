import type { WireError } from '../errors.js';
import type { EvaluateResult } from '../protocol.js';

/**
 * What a Web Worker (worker.ts) answers the pool (web-worker-pool.ts) for each task it is posted;
 * the tasks themselves are protocol.ts's. Errors cross as plain data and are rebuilt on the page.
 */
export type WorkerReply = { readonly value: EvaluateResult | undefined } | { readonly error: WireError };
