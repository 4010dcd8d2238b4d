import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runNode, tempDir } from './helpers.js';

const SCALING_CLI = join(ROOT, 'dist', 'bench', 'scaling.js');

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
    const rounds = stdout.split('\n').filter((line) => line.startsWith('  batch 256, round '));
    expect(rounds).toHaveLength(3);
    rounds.forEach((line, i) =>
      expect(line).toMatch(new RegExp(`^  batch 256, round ${i + 1}/3: 1w \\d+, 2w \\d+ samples/s$`)),
    );
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.ceiling.rounds).toHaveLength(3);
    const sorted = [...report.ceiling.rounds].sort((a: number, b: number) => a - b);
    expect(report.ceiling.speedup).toBe(sorted[1]);
    expect(report.ceiling.shardMs.one).toBeGreaterThan(0);
    expect(report.ceiling.shardMs.many).toBeGreaterThan(0);
    // One sample before the rounds, one after each.
    expect(report.peak.samples).toBe(4);
    expect(report.results.map((r: { workers: number }) => r.workers)).toEqual([1, 2]);
    for (const r of report.results) {
      expect(r.batchSize).toBe(256);
      expect(r.samplesPerSec).toBeCloseTo((256 / r.msPerStep) * 1000, 6);
      for (const key of ['msPerStep', 'gradientMs', 'updateMs', 'gflopsPerWorker', 'ofPeak', 'speedup']) {
        expect(Number.isFinite(r[key]) && r[key] > 0, key).toBe(true);
      }
      expect(r.gradientMs).toBeLessThan(r.msPerStep);
    }
    expect(report.results[0].speedup).toBe(1);
    const table = stdout.split('\n').filter((line) => /^ {6}[12] /.test(line));
    expect(table).toHaveLength(2);
    expect(report.baselines[0].samplesPerSec).toBeGreaterThan(0);
  }, 180_000);
});
