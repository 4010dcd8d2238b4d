import { type ParseArgsConfig, parseArgs } from 'node:util';
import { OptionError } from '../errors.js';

export type FlagOptions = NonNullable<ParseArgsConfig['options']>;

/** What parseFlags returns: the flags' values, typed from `O`, and the positional arguments. */
export type ParsedFlags<O extends FlagOptions> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: boolean }>
>;

/**
 * Node's `parseArgs`, strict, as every command of the project reads its flags: a mistake becomes
 * one OptionError line that names the flag (`unknown flag --wrokers`), pointing to `--help` where
 * the command has one. Positional arguments are refused unless `positionals` allows them.
 */
export function parseFlags<const O extends FlagOptions>(
  argv: readonly string[],
  options: O,
  settings: { readonly help?: boolean; readonly positionals?: boolean } = {},
): ParsedFlags<O> {
  const config = {
    args: joinNegativeValues(argv),
    options,
    strict: true as const,
    allowPositionals: settings.positionals ?? false,
  };
  try {
    return parseArgs(config);
  } catch (error) {
    throw new OptionError(`${parseErrorText(error as Error)}${settings.help === false ? '' : ' (see --help)'}`);
  }
}

/**
 * `--workers -1` as `--workers=-1`: parseArgs would take `-1` for a flag and report a missing
 * value, where the user needs to hear that -1 is out of range.
 */
function joinNegativeValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (/^--[\w-]+$/.test(argv[i]) && /^-\.?\d/.test(argv[i + 1] ?? '')) out.push(`${argv[i]}=${argv[++i]}`);
    else out.push(argv[i]);
  }
  return out;
}

/** Node's parseArgs messages, reduced to one line. */
function parseErrorText(error: Error & { code?: string }): string {
  const flag = /'(-{1,2}[\w-]+)/.exec(error.message)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${flag ?? error.message}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return error.message.includes('does not take') ? `${flag} takes no value` : `${flag ?? 'a flag'} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']*)'/.exec(error.message)?.[1] ?? ''}`.trim();
    default:
      return error.message.split('\n')[0];
  }
}
