import type { Collective } from '../model/compute.js';
import { CONTROL_WORDS, type CollectiveMemory, collectiveSlotStart, createCollectiveMemory } from '../protocol.js';
import { shardOf, type Span } from '../sharding.js';
import { barrier } from './sync.js';

/**
 * The collective of the computing workers of a run (see Collective in model/compute.ts), on the
 * run's shared memory (CollectiveMemory in protocol.ts) and its barrier. Each worker sums every
 * slot itself, in shard order: a few values per shard, cheaper than another barrier to share one
 * worker's sums.
 */
export class SharedCollective implements Collective {
  readonly #memory: CollectiveMemory;
  readonly #control: Int32Array;
  readonly #parties: number;
  /** Each half's slot of each shard, `[half][shard]`. */
  readonly #slots: readonly (readonly Float64Array[])[];
  readonly #sums: Float64Array;
  /** The shards of the step that have samples, in shard order: the slots summed. */
  readonly #summed: Int32Array;
  #summedCount = 0;
  /**
   * The half the next sum uses: alternating from sum to sum, across steps too, so that every
   * worker, making the same sums from the start of its task, uses the same half.
   */
  #half = 0;
  readonly #span: Span = { start: 0, end: 0 };

  /** `parties` workers compute, and meet at the barrier words of `control`. */
  constructor(memory: CollectiveMemory, control: Int32Array, parties: number) {
    this.#memory = memory;
    this.#control = control;
    this.#parties = parties;
    this.#slots = [0, 1].map((half) =>
      Array.from({ length: memory.shards }, (_, shard) => {
        const start = collectiveSlotStart(memory, half, shard);
        return memory.values.subarray(start, start + memory.length);
      }),
    );
    this.#sums = new Float64Array(memory.length);
    this.#summed = new Int32Array(memory.shards);
  }

  /** A collective of one worker that computes all `shards` itself (a benchmark's, a test's). */
  static alone(shards: number, length: number): SharedCollective {
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    return new SharedCollective(createCollectiveMemory(shards, length), control, 1);
  }

  /**
   * Starts a step of `samples` samples (at least one), split over the shards as sharding.ts splits
   * a batch: the shards left empty write no slot, and their slots are left out of the sums.
   */
  beginStep(samples: number): void {
    this.#summedCount = 0;
    for (let k = 0; k < this.#memory.shards; k++) {
      const { start, end } = shardOf(0, samples, k, this.#memory.shards, this.#span);
      if (end > start) this.#summed[this.#summedCount++] = k;
    }
  }

  slot(index: number): Float64Array {
    return this.#slots[this.#half][index];
  }

  sum(length: number): Float64Array {
    if (length > this.#memory.length) {
      throw new Error(`a sum of ${length} values over a collective of ${this.#memory.length} per shard`);
    }
    // This is a sync point: every computing worker has written its slots once all are here.
    barrier(this.#control, this.#parties);
    const slots = this.#slots[this.#half];
    const sums = this.#sums;
    const first = slots[this.#summed[0]];
    for (let i = 0; i < length; i++) sums[i] = first[i];
    for (let k = 1; k < this.#summedCount; k++) {
      const slot = slots[this.#summed[k]];
      for (let i = 0; i < length; i++) sums[i] += slot[i];
    }
    this.#half = 1 - this.#half;
    return sums;
  }
}
