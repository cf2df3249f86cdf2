// The command line of a benchmark: its --help, its flags and the BENCH_* environment variables that
// tune it, declared once so that the help a user reads is the list the benchmark checks. A flag it
// does not know, or a setting that is not a number where one is needed, stops it before it starts
// any server, naming what was wrong: a typo must not cost a 10-minute run measuring the defaults.

/** A flag of a benchmark: `--smoke`, or one taking a value (`--svg FILE`). */
export interface BenchFlag {
  readonly name: `--${string}`;
  /** The value's placeholder in the help (`FILE`); absent for a flag that takes none. */
  readonly value?: string;
  readonly about: string;
}

/** A BENCH_* environment variable a benchmark reads, with its default as the help shows it. */
export interface BenchSetting {
  readonly name: `BENCH_${string}`;
  readonly about: string;
  readonly default: string;
  /**
   * What it holds, checked before the benchmark starts: a whole number of 1 or more (`count`), a
   * number above zero (`number`), `0` or `1` (`switch`), a JSON object, or a comma-separated list
   * of some of its `choices` (`list`). Without a kind the text is the benchmark's to read.
   */
  readonly kind?: 'count' | 'number' | 'switch' | 'json' | 'list';
  /** A count or number that may also be 0, which means what `about` says (no warm-up, say). */
  readonly zero?: true;
  /** The values a `list` may hold, as the help shows them (a list setting must have them). */
  readonly choices?: readonly string[];
}

export interface BenchUsage {
  /** How it is run: `pnpm bench:hit`. */
  readonly command: string;
  /** What it measures and against what, a few lines. */
  readonly about: string;
  readonly flags: readonly BenchFlag[];
  readonly settings: readonly BenchSetting[];
}

/** A benchmark's command line, checked against its {@link BenchUsage}. */
export interface BenchArgs {
  /** Whether a flag that takes no value was given. */
  has(flag: `--${string}`): boolean;
  /** The value given to a flag that takes one, or undefined. */
  value(flag: `--${string}`): string | undefined;
  /** A declared setting's text, or undefined when it is not set. */
  text(setting: `BENCH_${string}`): string | undefined;
  /** A declared count or number setting, `fallback` when it is not set. */
  number(setting: `BENCH_${string}`, fallback: number): number;
  /** A declared switch (`0` or `1`), `fallback` when it is not set. */
  on(setting: `BENCH_${string}`, fallback: boolean): boolean;
  /** A declared JSON setting, parsed; undefined when it is not set. */
  json(setting: `BENCH_${string}`): Record<string, unknown> | undefined;
  /** A declared list setting: the choices it names, each once, in the order given; undefined when it is not set. */
  list(setting: `BENCH_${string}`): readonly string[] | undefined;
}

/** A benchmark's command line that it cannot run with; the message names the flag or setting. */
export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

/** The help text: what it measures, its flags and its settings. */
export function benchHelp(usage: BenchUsage): string {
  const flags = [...usage.flags, { name: '--help', about: 'print this help' } as BenchFlag];
  const flagNames = flags.map((flag) => (flag.value === undefined ? flag.name : `${flag.name} ${flag.value}`));
  const width = Math.max(...flagNames.map((name) => name.length), ...usage.settings.map((setting) => setting.name.length)) + 2;
  const lines = [`Usage: ${usage.command} [options]`, '', usage.about.trim(), '', 'Options:'];
  flags.forEach((flag, i) => lines.push(`  ${(flagNames[i] as string).padEnd(width)}${flag.about}`));
  if (usage.settings.length > 0) {
    lines.push('', 'Environment:');
    for (const setting of usage.settings) {
      const choices = setting.kind === 'list' ? `one or more of ${(setting.choices ?? []).join(', ')}; ` : '';
      lines.push(`  ${setting.name.padEnd(width)}${setting.about} (${choices}default: ${setting.default})`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Checks `argv` and `env` against `usage`. Throws {@link BenchUsageError} for an unknown flag, a
 * flag without its value (or with an empty one), a numeric setting that is not a number above
 * zero, or a list naming a value not among its choices, all before the benchmark starts anything.
 * Returns null when --help was asked for.
 */
export function parseBenchArgs(usage: BenchUsage, argv: readonly string[], env: NodeJS.ProcessEnv): BenchArgs | null {
  const known = new Map(usage.flags.map((flag) => [flag.name as string, flag]));
  const given = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') return null;
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const flag = known.get(name);
    if (flag === undefined) throw new BenchUsageError(`unknown option "${arg}" (--help lists the options)`);
    if (flag.value === undefined) {
      if (inline !== undefined) throw new BenchUsageError(`${name} takes no value, got "${inline}"`);
      given.set(name, true);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || value === '' || (inline === undefined && value.startsWith('--'))) throw new BenchUsageError(`${name} needs a value: ${name} ${flag.value}`);
    given.set(name, value);
  }
  const values = new Map<string, { kind: BenchSetting['kind']; value: unknown }>();
  for (const setting of usage.settings) {
    // A list without its choices is the benchmark's own bug, found whether or not the setting is set.
    if (setting.kind === 'list' && (setting.choices === undefined || setting.choices.length === 0)) throw new Error(`${setting.name} is a list setting without its choices in the benchmark's usage`);
    const text = env[setting.name] === '' ? undefined : env[setting.name];
    values.set(setting.name, { kind: setting.kind, value: text === undefined ? undefined : settingValue(setting, text) });
  }
  // Reading a setting the usage does not declare, or as another kind, is the benchmark's own bug.
  const read = (setting: string, kind: BenchSetting['kind']): unknown => {
    const declared = values.get(setting);
    if (declared === undefined || declared.kind !== kind) throw new Error(`${setting} is not declared as a ${kind ?? 'text'} setting in the benchmark's usage`);
    return declared.value;
  };
  return {
    has: (flag) => given.get(flag) === true,
    value: (flag) => {
      const value = given.get(flag);
      return typeof value === 'string' ? value : undefined;
    },
    text: (setting) => read(setting, undefined) as string | undefined,
    number: (setting, fallback) => (read(setting, values.get(setting)?.kind === 'count' ? 'count' : 'number') as number | undefined) ?? fallback,
    on: (setting, fallback) => (read(setting, 'switch') as boolean | undefined) ?? fallback,
    json: (setting) => read(setting, 'json') as Record<string, unknown> | undefined,
    list: (setting) => read(setting, 'list') as readonly string[] | undefined,
  };
}

/** A setting's value from its text, as its kind says; {@link BenchUsageError} names it when the text is not one. */
function settingValue(setting: BenchSetting, text: string): unknown {
  switch (setting.kind) {
    case undefined:
      return text;
    case 'count':
    case 'number': {
      const value = Number(text);
      const whole = setting.kind === 'count';
      const least = setting.zero === true ? 0 : whole ? 1 : Number.MIN_VALUE;
      if (!Number.isFinite(value) || value < least || (whole && !Number.isInteger(value))) {
        const expected = whole ? `a whole number of ${least} or more` : setting.zero === true ? 'a number of 0 or more' : 'a number above 0';
        throw new BenchUsageError(`${setting.name}: expected ${expected}, got "${text}"`);
      }
      return value;
    }
    case 'switch':
      if (text !== '0' && text !== '1') throw new BenchUsageError(`${setting.name}: expected 0 or 1, got "${text}"`);
      return text === '1';
    case 'json': {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        value = undefined;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BenchUsageError(`${setting.name}: expected a JSON object, got "${text}"`);
      return value;
    }
    case 'list': {
      const choices = setting.choices ?? [];
      const names = text.split(',').map((name) => name.trim());
      const wrong = names.find((name) => !choices.includes(name));
      if (wrong !== undefined) {
        const got = wrong === '' ? `an empty name in "${text}"` : `"${wrong}"`;
        throw new BenchUsageError(`${setting.name}: expected a comma-separated list of ${choices.join(', ')}, got ${got}`);
      }
      return [...new Set(names)];
    }
  }
}

/**
 * The entry point's reading of its command line: prints the help and exits 0 on --help; prints
 * `<command>: <what was wrong>` and exits 2 on a bad flag or setting.
 */
export function benchArgs(usage: BenchUsage, argv: readonly string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): BenchArgs {
  let args: BenchArgs | null;
  try {
    args = parseBenchArgs(usage, argv, env);
  } catch (error) {
    if (!(error instanceof BenchUsageError)) throw error;
    process.stderr.write(`${usage.command}: ${error.message}\n`);
    process.exit(2);
  }
  if (args === null) {
    process.stdout.write(benchHelp(usage));
    process.exit(0);
  }
  return args;
}
