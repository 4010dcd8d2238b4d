import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runNode, tempDir } from './helpers.js';

describe('examples/embed.ts', () => {
  it('trains in a trainer thread through the public API, saves and reloads the model', async () => {
    const out = join(tempDir(), 'model');
    const { code, stdout, stderr } = await runNode(join(ROOT, 'dist', 'examples', 'embed.js'), [out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Training on 6000 images with 2 workers/m);
    const epoch2 = /^epoch 2: loss \d\.\d{4}, test accuracy ([01]\.\d{4})$/m.exec(stdout);
    const saved = new RegExp(
      `^saved to ${out}; reloaded model has 101770 parameters; test accuracy ([01]\\.\\d{4})$`,
      'm',
    ).exec(stdout);
    expect(epoch2, stdout).not.toBeNull();
    expect(saved, stdout).not.toBeNull();
    // The run's score is its last epoch's; two epochs on 6,000 images reach 0.7 and more.
    expect(saved?.[1]).toBe(epoch2?.[1]);
    expect(Number(saved?.[1])).toBeGreaterThanOrEqual(0.7);
    expect(existsSync(join(out, 'model.json'))).toBe(true);
  });
});

describe('examples/sequential.ts', () => {
  it('trains a tf.sequential CNN through the public API, and the same model object then predicts', async () => {
    const { code, stdout, stderr } = await runNode(join(ROOT, 'dist', 'examples', 'sequential.js'), []);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^Training on 6000 images with 2 workers: model conv:16:3:same,pool,flatten,dropout:0\.25,dense:10,/m,
    );
    const trained = /^trained conv:16:3:same,pool,flatten,dropout:0\.25,dense:10: test accuracy ([01]\.\d{4})$/m.exec(
      stdout,
    );
    expect(trained, stdout).not.toBeNull();
    expect(Number(trained?.[1])).toBeGreaterThanOrEqual(0.7);
    // The first test image is an ankle boot, which such a model gets right.
    expect(stdout).toMatch(/^the first test image is a Ankle boot; it is labelled Ankle boot$/m);
  });
});
