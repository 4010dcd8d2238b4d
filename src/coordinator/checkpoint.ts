import { accessSync, constants, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError, OptionError } from '../errors.js';
import { writeFileAtomically } from '../files.js';
import type { Checkpoint, EpochLog, TrainConfig } from './config.js';

export type { Checkpoint } from './config.js';

export const CHECKPOINT_FILE = 'checkpoint.bin';
/** The format's name and version: 3 added the layers' state. */
const MAGIC = 'FMNISTCK3';
/** The format before, which this version does not read: its runs had no state to carry. */
const PREVIOUS_MAGIC = 'FMNISTCK2';

interface Header {
  config: TrainConfig;
  trainCount: number;
  epochsDone: number;
  stepsDone: number;
  history: EpochLog[];
  adamSteps: number;
  rngState: number;
  /** Lengths of the arrays that follow the header: params, state, m, v, stats, order. */
  lengths: number[];
}

const ARRAY_KINDS = [Float32Array, Float32Array, Float32Array, Float32Array, Float64Array, Int32Array] as const;

/** Throws an OptionError unless `dir` is a directory this process can write into. */
export function checkCheckpointDir(dir: string): void {
  const fail = (why: string) => new OptionError(`checkpointDir "${dir}" ${why}`);
  const found = statSync(dir, { throwIfNoEntry: false });
  if (found === undefined) throw fail('does not exist; create it first');
  if (!found.isDirectory()) throw fail('is a file, not a directory');
  try {
    accessSync(dir, constants.W_OK);
  } catch (error) {
    throw fail(`cannot be written (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

/**
 * Writes `dir/checkpoint.bin`: a magic string, the JSON header's length and the header, then the
 * arrays, atomically (see writeFileAtomically): a crash at any moment leaves the previous
 * checkpoint or the new one, whole.
 */
export function writeCheckpoint(dir: string, checkpoint: Checkpoint): string {
  const arrays = [
    checkpoint.params,
    checkpoint.state,
    checkpoint.adam.m,
    checkpoint.adam.v,
    checkpoint.epoch.stats,
    checkpoint.epoch.order,
  ];
  const header: Header = {
    config: checkpoint.config,
    trainCount: checkpoint.trainCount,
    epochsDone: checkpoint.epochsDone,
    stepsDone: checkpoint.stepsDone,
    history: [...checkpoint.history],
    adamSteps: checkpoint.adam.steps,
    rngState: checkpoint.rngState,
    lengths: arrays.map((a) => a.length),
  };
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, MAGIC.length);
  const target = join(dir, CHECKPOINT_FILE);
  writeFileAtomically(target, [
    prefix,
    json,
    ...arrays.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)),
  ]);
  return target;
}

/** Reads a checkpoint written by `train` into `dir`; a missing, damaged or foreign file is a DataError. */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  const path = join(dir, CHECKPOINT_FILE);
  const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new DataError(`${path}: cannot read the checkpoint (${error.code}); pass a --resume directory that has one`);
  });
  const bad = (why: string) => new DataError(`${path}: not a usable checkpoint (${why})`);
  if (bytes.toString('latin1', 0, PREVIOUS_MAGIC.length) === PREVIOUS_MAGIC) {
    throw new DataError(
      `${path}: a checkpoint of an earlier version of the trainer (format 2; this version reads format 3); ` +
        'resume it with the version that wrote it, or train again',
    );
  }
  if (bytes.length < MAGIC.length + 4 || bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) throw bad('wrong magic');
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  if (MAGIC.length + 4 + headerLength > bytes.length) throw bad('truncated header');
  let header: Header;
  try {
    header = JSON.parse(bytes.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength)) as Header;
  } catch {
    throw bad('unreadable header');
  }
  const { lengths } = header;
  if (
    !Array.isArray(lengths) ||
    lengths.length !== ARRAY_KINDS.length ||
    !lengths.every((n) => Number.isInteger(n) && n >= 0)
  ) {
    throw bad('unreadable header');
  }
  let offset = MAGIC.length + 4 + headerLength;
  const expected = offset + lengths.reduce((sum, n, i) => sum + n * ARRAY_KINDS[i].BYTES_PER_ELEMENT, 0);
  if (bytes.length !== expected) throw bad(`${bytes.length} bytes, expected ${expected}`);
  const [params, state, m, v, stats, order] = ARRAY_KINDS.map((Kind, i) => {
    const array = new Kind(lengths[i]);
    new Uint8Array(array.buffer).set(bytes.subarray(offset, offset + array.byteLength));
    offset += array.byteLength;
    return array;
  }) as [Float32Array, Float32Array, Float32Array, Float32Array, Float64Array, Int32Array];
  return {
    config: header.config,
    trainCount: header.trainCount,
    epochsDone: header.epochsDone,
    stepsDone: header.stepsDone,
    history: header.history,
    params,
    state,
    adam: { m, v, steps: header.adamSteps },
    epoch: { order, stats },
    rngState: header.rngState,
  };
}
