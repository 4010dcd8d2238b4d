/**
 * Importing the package leaves tfjs ready to build layers, as Keras users expect: a program that
 * builds a tf.sequential straight after its imports, in a process of its own (tfjs starts once
 * per process), with the package imported after tfjs or before it.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT, runNode } from './helpers.js';

const PACKAGE = pathToFileURL(join(ROOT, 'dist', 'src', 'index.js')).href;

const BUILD = `
const model = tf.sequential({
  layers: [tf.layers.flatten({ inputShape: [28, 28] }), tf.layers.dense({ units: 10, activation: 'softmax' })],
});
const [probabilities] = tf.tidy(() => Array.from(model.predict(tf.zeros([1, 28, 28])).sum(1).dataSync()));
console.log(JSON.stringify({ backend: tf.getBackend(), params: model.countParams(), probabilities, train: typeof train }));
`;

describe('importing the package', () => {
  it.each([
    ['after tfjs', `import * as tf from '@tensorflow/tfjs';\nimport { train } from '${PACKAGE}';`],
    ['before tfjs', `import { train } from '${PACKAGE}';\nimport * as tf from '@tensorflow/tfjs';`],
  ])('%s, a tf.sequential builds and predicts at once, on the wasm backend', async (_, imports) => {
    // --eval resolves '@tensorflow/tfjs' from the working directory: the repository's, as a project's.
    const run = await runNode('--input-type=module', ['--eval', imports + BUILD]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const printed = JSON.parse(run.stdout);
    expect(printed.backend).toBe('wasm');
    expect(printed.params).toBe(784 * 10 + 10);
    expect(printed.probabilities).toBeCloseTo(1, 5);
    expect(printed.train).toBe('function');
  });
});
