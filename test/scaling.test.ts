import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runNode, tempDir } from './helpers.js';

const SCALING_CLI = join(ROOT, 'dist', 'bench', 'scaling.js');

interface Round {
  readonly msPerStep: number;
  readonly gradientMs: number;
  readonly updateMs: number;
  readonly waitMs: number;
  readonly samplesPerSec: number;
  readonly gflopsPerWorker: number;
  readonly peakGflops: number;
}

interface Row extends Omit<Round, 'peakGflops'> {
  readonly workers: number;
  readonly batchSize: number;
  readonly speedup: number;
  readonly ofPeak: number;
  readonly rounds: readonly Round[];
}

/** The middle value of an odd number of values. */
function median(values: readonly number[]): number {
  expect(values.length % 2).toBe(1);
  return [...values].sort((a, b) => a - b)[(values.length - 1) / 2];
}

describe('npm run bench:scaling', () => {
  it.each([
    [['--workers', '0'], /^error: --workers must be a comma-separated list of positive integers, got "0"$/],
    [['--model', 'vgg'], /^error: --model must be mlp or cnn, got "vgg"$/],
    [['--wrokers', '2'], /^error: unknown flag --wrokers$/],
  ])('%j: one line on stderr, exit 1', async (args, message) => {
    const { code, stdout, stderr } = await runNode(SCALING_CLI, args as string[]);
    expect(code).toBe(1);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr.trimEnd()).toMatch(message as RegExp);
    expect(stdout).toBe('');
  });

  it('measures the worker counts in interleaved rounds, each with a round of the ceiling and a sample of the peak', async () => {
    // What runs and what is reported, not how fast: a quick run, two worker counts, one batch.
    const json = join(tempDir(), 'scaling.json');
    const args = ['--quick', '--workers', '1,2', '--batch-size', '256', '--json', json];
    const { code, stdout, stderr } = await runNode(SCALING_CLI, args);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.split('\n').filter((line) => line.startsWith('  batch 256, round '));
    expect(lines).toHaveLength(3);
    lines.forEach((line, i) =>
      expect(line).toMatch(new RegExp(`^  batch 256, round ${i + 1}/3: 1w \\d+, 2w \\d+ samples/s$`)),
    );
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.ceiling.rounds).toHaveLength(3);
    expect(report.ceiling.speedup).toBe(median(report.ceiling.rounds));
    expect(report.ceiling.shardMs.one).toBeGreaterThan(0);
    expect(report.ceiling.shardMs.many).toBeGreaterThan(0);
    // One sample before the rounds, one after each.
    expect(report.peak.samples).toBe(4);
    expect(report.results.map((r: Row) => r.workers)).toEqual([1, 2]);
    const [one] = report.results as Row[];
    for (const r of report.results as Row[]) {
      expect(r.batchSize).toBe(256);
      expect(r.samplesPerSec).toBeCloseTo((256 / r.msPerStep) * 1000, 6);
      for (const key of ['msPerStep', 'gradientMs', 'updateMs', 'gflopsPerWorker', 'ofPeak', 'speedup'] as const) {
        expect(Number.isFinite(r[key]) && r[key] > 0, key).toBe(true);
      }
      expect(r.gradientMs).toBeLessThan(r.msPerStep);
      // Each round's figures are in the JSON, as the round's line printed them; every figure is
      // the median of the rounds, and every ratio the median of the ratios within rounds.
      expect(r.rounds).toHaveLength(3);
      r.rounds.forEach((round, i) => {
        expect(round.samplesPerSec).toBeCloseTo((256 / round.msPerStep) * 1000, 6);
        expect(round.peakGflops).toBe(one.rounds[i].peakGflops);
      });
      for (const key of ['msPerStep', 'gradientMs', 'updateMs', 'waitMs'] as const) {
        expect(r[key], key).toBe(median(r.rounds.map((round) => round[key])));
      }
      expect(r.speedup).toBe(median(r.rounds.map((round, i) => one.rounds[i].msPerStep / round.msPerStep)));
      expect(r.ofPeak).toBe(median(r.rounds.map((round) => round.gflopsPerWorker / round.peakGflops)));
      const computing = Math.min(r.workers, report.machine.cores);
      expect(r.gflopsPerWorker).toBeCloseTo((report.model.flopsPerSample * 256) / computing / r.gradientMs / 1e6, 9);
    }
    expect(report.results[0].speedup).toBe(1);
    lines.forEach((line, i) =>
      expect(line).toBe(
        `  batch 256, round ${i + 1}/3: ` +
          (report.results as Row[]).map((r) => `${r.workers}w ${Math.trunc(r.rounds[i].samplesPerSec)}`).join(', ') +
          ' samples/s',
      ),
    );
    const table = stdout.split('\n').filter((line) => /^ {6}[12] /.test(line));
    expect(table).toHaveLength(2);
    expect(report.baselines[0].samplesPerSec).toBeGreaterThan(0);
  }, 180_000);
});
