import { describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { benchHelp, parseBenchArgs, BenchUsageError, type BenchUsage } from '@sitecache/test-services';

const usage: BenchUsage = {
  command: 'pnpm bench:demo',
  about: 'What it measures.',
  flags: [
    { name: '--smoke', about: 'one short round' },
    { name: '--svg', value: 'FILE', about: 'where the chart goes' },
  ],
  settings: [
    { name: 'BENCH_ROUNDS', kind: 'count', default: '3', about: 'rounds' },
    { name: 'BENCH_WARMUP', kind: 'count', zero: true, default: '10', about: 'seconds of warm-up (0: none)' },
    { name: 'BENCH_PASS_MS', kind: 'number', zero: true, default: '0', about: 'ms a pass costs (0: calibrated)' },
    { name: 'BENCH_PIN', kind: 'switch', default: '1', about: '0: no taskset' },
    { name: 'BENCH_OPTIONS', kind: 'json', default: '{}', about: 'render options' },
    { name: 'BENCH_LABEL', default: 'none', about: 'a label' },
    { name: 'BENCH_SETUPS', kind: 'list', choices: ['sitecache', 'varnish', 'proxy_cache'], default: 'every setup', about: 'setups' },
  ],
};

describe('a benchmark command line', () => {
  it('reads flags, values and settings of each kind', () => {
    const args = parseBenchArgs(usage, ['--smoke', '--svg', 'out.svg'], {
      BENCH_ROUNDS: '5',
      BENCH_PIN: '0',
      BENCH_OPTIONS: '{"memcachedBufferSize":"64k"}',
      BENCH_LABEL: 'a,b',
      BENCH_SETUPS: 'varnish, sitecache',
    });
    expect(args).not.toBeNull();
    expect(args?.has('--smoke')).toBe(true);
    expect(args?.value('--svg')).toBe('out.svg');
    expect(args?.number('BENCH_ROUNDS', 3)).toBe(5);
    expect(parseBenchArgs(usage, [], { BENCH_WARMUP: '0', BENCH_PASS_MS: '0.045' })?.number('BENCH_WARMUP', 10)).toBe(0);
    expect(parseBenchArgs(usage, [], { BENCH_PASS_MS: '0.045' })?.number('BENCH_PASS_MS', 0)).toBe(0.045);
    expect(args?.on('BENCH_PIN', true)).toBe(false);
    expect(args?.json('BENCH_OPTIONS')).toEqual({ memcachedBufferSize: '64k' });
    expect(args?.text('BENCH_LABEL')).toBe('a,b');
    expect(args?.list('BENCH_SETUPS')).toEqual(['varnish', 'sitecache']);
    expect(parseBenchArgs(usage, [], { BENCH_SETUPS: 'proxy_cache,proxy_cache' })?.list('BENCH_SETUPS')).toEqual(['proxy_cache']);
    expect(parseBenchArgs(usage, ['--svg=x.svg'], {})?.value('--svg')).toBe('x.svg');
  });

  it('falls back to the defaults the benchmark gives when a setting is unset or empty', () => {
    const args = parseBenchArgs(usage, [], { BENCH_ROUNDS: '' });
    expect(args?.has('--smoke')).toBe(false);
    expect(args?.number('BENCH_ROUNDS', 3)).toBe(3);
    expect(args?.on('BENCH_PIN', true)).toBe(true);
    expect(args?.json('BENCH_OPTIONS')).toBeUndefined();
    expect(args?.list('BENCH_SETUPS')).toBeUndefined();
    expect(parseBenchArgs(usage, [], { BENCH_SETUPS: '' })?.list('BENCH_SETUPS')).toBeUndefined();
  });

  it.each([
    [['--smok'], {}, 'unknown option "--smok" (--help lists the options)'],
    [['--svg'], {}, '--svg needs a value: --svg FILE'],
    [['--svg', '--smoke'], {}, '--svg needs a value: --svg FILE'],
    [['--svg='], {}, '--svg needs a value: --svg FILE'],
    [['--svg', ''], {}, '--svg needs a value: --svg FILE'],
    [['--svg', '', '--smoke'], {}, '--svg needs a value: --svg FILE'],
    [['--smoke=1'], {}, '--smoke takes no value, got "1"'],
    [[], { BENCH_ROUNDS: 'three' }, 'BENCH_ROUNDS: expected a whole number of 1 or more, got "three"'],
    [[], { BENCH_ROUNDS: '0' }, 'BENCH_ROUNDS: expected a whole number of 1 or more, got "0"'],
    [[], { BENCH_ROUNDS: '2.5' }, 'BENCH_ROUNDS: expected a whole number of 1 or more, got "2.5"'],
    [[], { BENCH_WARMUP: '-1' }, 'BENCH_WARMUP: expected a whole number of 0 or more, got "-1"'],
    [[], { BENCH_PASS_MS: 'fast' }, 'BENCH_PASS_MS: expected a number of 0 or more, got "fast"'],
    [[], { BENCH_PIN: 'no' }, 'BENCH_PIN: expected 0 or 1, got "no"'],
    [[], { BENCH_OPTIONS: '{bad' }, 'BENCH_OPTIONS: expected a JSON object, got "{bad"'],
    [[], { BENCH_OPTIONS: '[1]' }, 'BENCH_OPTIONS: expected a JSON object, got "[1]"'],
    [[], { BENCH_SETUPS: 'sitecache,varnsh' }, 'BENCH_SETUPS: expected a comma-separated list of sitecache, varnish, proxy_cache, got "varnsh"'],
    [[], { BENCH_SETUPS: 'all' }, 'BENCH_SETUPS: expected a comma-separated list of sitecache, varnish, proxy_cache, got "all"'],
    [[], { BENCH_SETUPS: 'sitecache,' }, 'BENCH_SETUPS: expected a comma-separated list of sitecache, varnish, proxy_cache, got an empty name in "sitecache,"'],
  ])('refuses %j with %j before anything starts, naming it', (argv, env, message) => {
    expect(() => parseBenchArgs(usage, argv, env)).toThrow(new BenchUsageError(message));
  });

  it('returns null for --help, whose text lists every flag and setting with its default', () => {
    expect(parseBenchArgs(usage, ['--smoke', '--help'], {})).toBeNull();
    expect(parseBenchArgs(usage, ['-h'], { BENCH_ROUNDS: 'bad' })).toBeNull();
    const help = benchHelp(usage);
    expect(help.startsWith('Usage: pnpm bench:demo [options]\n\nWhat it measures.\n')).toBe(true);
    for (const line of ['  --smoke', '  --svg FILE', '  --help', '  BENCH_ROUNDS', 'rounds (default: 3)', 'a label (default: none)']) expect(help).toContain(line);
    expect(help).toContain('setups (one or more of sitecache, varnish, proxy_cache; default: every setup)');
  });

  it('throws on a setting read that the usage does not declare: the help would not list it', () => {
    const args = parseBenchArgs(usage, [], {});
    expect(() => args?.number('BENCH_SECONDS', 1)).toThrow('BENCH_SECONDS is not declared as a number setting');
    expect(() => args?.on('BENCH_ROUNDS', true)).toThrow('BENCH_ROUNDS is not declared as a switch setting');
    expect(() => args?.text('BENCH_ROUNDS')).toThrow('BENCH_ROUNDS is not declared as a text setting');
    expect(() => args?.text('BENCH_SETUPS')).toThrow('BENCH_SETUPS is not declared as a text setting');
    expect(() => args?.list('BENCH_LABEL')).toThrow('BENCH_LABEL is not declared as a list setting');
  });

  it('throws on a list setting declared without its choices: nothing could be checked against it', () => {
    const bad: BenchUsage = { ...usage, settings: [{ name: 'BENCH_SETUPS', kind: 'list', default: 'every setup', about: 'setups' }] };
    expect(() => parseBenchArgs(bad, [], {})).toThrow('BENCH_SETUPS is a list setting without its choices');
    expect(() => parseBenchArgs(bad, [], {})).not.toThrow(BenchUsageError);
  });
});

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** Every benchmark entry point of the repository: packages' and examples' bench/*.bench.ts, and cluster-runner's bench/index.ts. */
function benchmarks(): string[] {
  const found: string[] = [];
  for (const group of ['packages', 'examples']) {
    for (const name of readdirSync(join(ROOT, group))) {
      const bench = join(ROOT, group, name, 'bench');
      let files: string[];
      try {
        files = readdirSync(bench);
      } catch {
        continue;
      }
      const entries = files.filter((file) => file.endsWith('.bench.ts'));
      if (entries.length === 0 && files.includes('index.ts')) entries.push('index.ts');
      found.push(...entries.map((file) => relative(ROOT, join(bench, file))));
    }
  }
  return found.sort();
}

describe('every benchmark of the repository', () => {
  it('is found (key, hit, store, tags, runner, site)', () => {
    expect(benchmarks()).toHaveLength(6);
  });

  it.each(benchmarks())('%s answers --help and refuses an unknown flag before starting anything', async (bench) => {
    const tsx = ['exec', 'tsx', bench];
    const help = await execa('pnpm', [...tsx, '--help'], { cwd: ROOT, reject: false });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pnpm bench:\w+ \[options\]\n/);
    expect(help.stdout).toContain('--smoke');
    const typo = await execa('pnpm', [...tsx, '--smok'], { cwd: ROOT, reject: false });
    expect(typo.exitCode).toBe(2);
    expect(typo.stderr).toMatch(/^pnpm bench:\w+: unknown option "--smok" \(--help lists the options\)$/m);
  }, 30_000);
});
