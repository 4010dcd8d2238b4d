import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runNode, tempDir } from './helpers.js';

// A program that installs the packed tarball and uses it as any other package, in JS and in TS.
const PROGRAM = `
import { train, loadFashionMnist, OptionError } from 'fashion-mnist-parallel';
const data = await loadFashionMnist({ dir: '/usr/share/datasets/fashion-mnist' });
const count = 2048;
const slice = { ...data, train: { images: data.train.images.subarray(0, count * 784), labels: data.train.labels.subarray(0, count), count } };
const result = await train({ data: slice, workers: 2, epochs: 1 });
console.log(JSON.stringify({ testAccuracy: result.testAccuracy, params: result.model.countParams(), typed: new OptionError('x') instanceof Error }));
`;

const TYPED = `
import { train, type TrainOptions, type TrainResult, type EpochLog } from 'fashion-mnist-parallel';
const options: TrainOptions = { workers: 2, epochs: 1, onEpochEnd: (log: EpochLog) => console.log(log.testAccuracy.toFixed(4)) };
const result: TrainResult = await train(options);
const accuracy: number = result.testAccuracy;
// @ts-expect-error: workers is a number, and the shipped types say so
const wrong: TrainOptions = { workers: 'two' };
console.log(accuracy, wrong);
`;

describe('the npm package', () => {
  it(
    'packs, installs into a fresh project, trains from JavaScript and type-checks from TypeScript',
    { timeout: 300_000 },
    async () => {
      const packDir = tempDir('fmnist-pack-');
      execFileSync('npm', ['pack', '--pack-destination', packDir, '--silent'], { cwd: ROOT, stdio: 'pipe' });
      const [tarball] = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
      const project = tempDir('fmnist-consumer-');
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
      // The dependencies come from npm's cache, filled by this repository's own `npm ci`.
      execFileSync(
        'npm',
        ['install', join(packDir, tarball), '--prefer-offline', '--no-audit', '--no-fund', '--silent'],
        { cwd: project, stdio: 'pipe' },
      );

      writeFileSync(join(project, 'main.mjs'), PROGRAM);
      const run = await runNode(join(project, 'main.mjs'), [], { cwd: project });
      expect(run.stderr).toBe('');
      const printed = JSON.parse(run.stdout.trim().split('\n').at(-1) as string);
      expect(printed.params).toBe(101_770);
      expect(printed.testAccuracy).toBeGreaterThan(0.6);
      expect(printed.typed).toBe(true);

      // skipLibCheck, as any tfjs program needs (tfjs's own .d.ts need DOM types); the shipped types are
      // still checked where the program uses them: the @ts-expect-error below fails if they are any.
      writeFileSync(join(project, 'typed.ts'), TYPED);
      writeFileSync(
        join(project, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noEmit: true,
            types: ['node'],
            typeRoots: [join(ROOT, 'node_modules', '@types')],
            skipLibCheck: true,
            lib: ['ES2022'],
          },
          files: ['typed.ts'],
        }),
      );
      const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      const typecheck = await runNode(tsc, ['-p', join(project, 'tsconfig.json')], { cwd: project });
      expect(typecheck.stdout + typecheck.stderr).toBe('');
      expect(typecheck.code).toBe(0);
    },
  );
});
