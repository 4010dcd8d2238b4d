/** The shared-memory words by which the ceiling's main thread drives its threads (see ceiling.ts). */
export const ROUND = 0;
export const ACTIVE = 1;
export const READY = 2;
export const CONTROL_WORDS = 3;

export interface CeilingJob {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly rows: number;
  /** How long each active thread computes in a round. */
  readonly ms: number;
  readonly warmupMs: number;
  readonly control: Int32Array;
}
