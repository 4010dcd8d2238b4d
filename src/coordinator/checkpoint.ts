import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { writeFileAtomically } from '../files.js';
import type { EpochLog, TrainConfig } from './options.js';
import type { SessionState } from './session.js';

/** Everything needed to continue a run exactly where it stopped. */
export interface Checkpoint {
  readonly config: TrainConfig;
  /** Training images the run was on: a resumed run must be given the same data. */
  readonly trainCount: number;
  /** Epochs finished (evaluated); `state.stepsDone` steps of the next one are done too. */
  readonly epochsDone: number;
  readonly history: readonly EpochLog[];
  readonly state: SessionState;
}

export const CHECKPOINT_FILE = 'checkpoint.bin';
const MAGIC = 'FMNISTCK1';

/**
 * Writes `dir/checkpoint.bin`: a JSON header, then the arrays, atomically (see writeFileAtomically):
 * a crash at any moment leaves the previous checkpoint or the new one, whole.
 */
export async function writeCheckpoint(dir: string, checkpoint: Checkpoint): Promise<string> {
  const { state } = checkpoint;
  const arrays = [state.params, state.m, state.v, state.stats, state.order];
  const header = Buffer.from(
    JSON.stringify({
      config: checkpoint.config,
      trainCount: checkpoint.trainCount,
      epochsDone: checkpoint.epochsDone,
      history: checkpoint.history,
      globalStep: state.globalStep,
      stepsDone: state.stepsDone,
      rngState: state.rngState,
      lengths: arrays.map((a) => a.length),
    }),
  );
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(header.length, MAGIC.length);
  const target = join(dir, CHECKPOINT_FILE);
  writeFileAtomically(target, [
    prefix,
    header,
    ...arrays.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)),
  ]);
  return target;
}

/** Reads a checkpoint written by `writeCheckpoint`; a damaged or foreign file is a DataError. */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  const path = join(dir, CHECKPOINT_FILE);
  const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new DataError(`${path}: cannot read the checkpoint (${error.code}); pass a --resume directory that has one`);
  });
  const bad = (why: string) => new DataError(`${path}: not a usable checkpoint (${why})`);
  if (bytes.length < MAGIC.length + 4 || bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) throw bad('wrong magic');
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  let header: {
    config: TrainConfig;
    trainCount: number;
    epochsDone: number;
    history: EpochLog[];
    globalStep: number;
    stepsDone: number;
    rngState: number;
    lengths: number[];
  };
  try {
    header = JSON.parse(bytes.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength));
  } catch {
    throw bad('unreadable header');
  }
  const kinds = [Float32Array, Float32Array, Float32Array, Float64Array, Int32Array];
  let offset = MAGIC.length + 4 + headerLength;
  const expected = offset + header.lengths.reduce((sum, n, i) => sum + n * kinds[i].BYTES_PER_ELEMENT, 0);
  if (header.lengths.length !== kinds.length || bytes.length !== expected)
    throw bad(`${bytes.length} bytes, expected ${expected}`);
  const [params, m, v, stats, order] = kinds.map((Kind, i) => {
    const array = new Kind(header.lengths[i]);
    new Uint8Array(array.buffer).set(bytes.subarray(offset, offset + array.byteLength));
    offset += array.byteLength;
    return array;
  }) as [Float32Array, Float32Array, Float32Array, Float64Array, Int32Array];
  return {
    config: header.config,
    trainCount: header.trainCount,
    epochsDone: header.epochsDone,
    history: header.history,
    state: {
      params,
      m,
      v,
      stats,
      order,
      globalStep: header.globalStep,
      stepsDone: header.stepsDone,
      rngState: header.rngState,
    },
  };
}
