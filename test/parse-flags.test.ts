import { describe, expect, it } from 'vitest';
import { parseFlags } from '../dist/src/cli/flags.js';
import { OptionError } from '../dist/src/errors.js';

const OPTIONS = { epochs: { type: 'string' }, quiet: { type: 'boolean' } } as const;

/** The one line parseFlags throws for these arguments. */
function mistake(argv: string[], settings?: { help?: boolean; positionals?: boolean }): string {
  try {
    parseFlags(argv, OPTIONS, settings);
  } catch (error) {
    expect(error).toBeInstanceOf(OptionError);
    return (error as Error).message;
  }
  throw new Error(`no error for ${JSON.stringify(argv)}`);
}

describe('parseFlags, as every command reads its flags', () => {
  it('reads values, booleans and --flag=value', () => {
    expect(parseFlags(['--epochs', '3', '--quiet'], OPTIONS).values).toEqual({ epochs: '3', quiet: true });
    expect(parseFlags(['--epochs=4'], OPTIONS).values).toEqual({ epochs: '4' });
  });

  it('keeps a negative number as the value of the flag before it, for the range check to report', () => {
    expect(parseFlags(['--epochs', '-1'], OPTIONS).values).toEqual({ epochs: '-1' });
    expect(parseFlags(['--epochs', '-.5'], OPTIONS).values).toEqual({ epochs: '-.5' });
  });

  it('names the flag in one line, pointing to --help unless the command has none', () => {
    expect(mistake(['--epoch', '3'])).toBe('unknown flag --epoch (see --help)');
    expect(mistake(['--epoch', '3'], { help: false })).toBe('unknown flag --epoch');
    expect(mistake(['--epochs'])).toBe('--epochs needs a value (see --help)');
    expect(mistake(['--quiet=yes'])).toBe('--quiet takes no value (see --help)');
    expect(mistake(['stray'])).toBe('unexpected argument stray (see --help)');
  });

  it('passes positional arguments only where the command takes them', () => {
    expect(parseFlags(['a.png', '--quiet'], OPTIONS, { positionals: true }).positionals).toEqual(['a.png']);
  });
});
