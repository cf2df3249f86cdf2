import { describe, expect, it } from '@jest/globals';
import { MAX_TOPICS, WarningLog } from '../src/warnings.js';

/** How many topics the log holds: what a flood of distinct messages would grow. */
const topicsHeld = (log: WarningLog): number => (log as unknown as { topics: Map<string, unknown> }).topics.size;

describe('WarningLog', () => {
  it('logs a topic once per interval', () => {
    const lines: string[] = [];
    const log = new WarningLog({ warn: (message) => lines.push(message) }, 60_000);
    for (let i = 0; i < 5; i++) log.warn('memcached a', 'a failed');
    expect(lines).toEqual(['a failed']);
  });

  it('holds at most MAX_TOPICS topics when none is quiet, and logs the distinct messages past them one line per interval', () => {
    const lines: string[] = [];
    const log = new WarningLog({ warn: (message) => lines.push(message) }, 60_000);
    for (let i = 0; i < MAX_TOPICS + 5000; i++) log.warn(`error: ${i}`, `failed with ${i}`);
    expect(topicsHeld(log)).toBe(MAX_TOPICS);
    expect(lines).toHaveLength(MAX_TOPICS + 1);
    expect(lines.at(-1)).toBe(`failed with ${MAX_TOPICS} (over ${MAX_TOPICS} kinds of warning within the interval; 0 of new kinds held back since the last such line)`);
    // A topic it holds is still logged once per interval, not counted among the others.
    log.warn('error: 0', 'failed with 0');
    expect(lines).toHaveLength(MAX_TOPICS + 1);
  });

  it('makes room again once topics are quiet for an interval', () => {
    const lines: string[] = [];
    let now = 1_000_000;
    const clock = jestClock(() => now);
    try {
      const log = new WarningLog({ warn: (message) => lines.push(message) }, 1_000);
      for (let i = 0; i < MAX_TOPICS + 3; i++) log.warn(`error: ${i}`, `failed with ${i}`);
      expect(lines).toHaveLength(MAX_TOPICS + 1);
      now += 1_000;
      log.warn('error: new', 'a new failure');
      expect(lines.at(-1)).toBe('a new failure');
      expect(topicsHeld(log)).toBe(1);
    } finally {
      clock.restore();
    }
  });
});

/** Date.now() as `now` says, until restored. */
function jestClock(now: () => number): { restore(): void } {
  const original = Date.now;
  Date.now = now;
  return { restore: () => void (Date.now = original) };
}
