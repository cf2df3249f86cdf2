import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ClusterSpecError, clusterKeyRange, clusterKeys, clusterRange, parseCluster } from '@sitecache/cluster-runner';

describe('parseCluster', () => {
  it('reads i/N as the runner passes it', () => {
    expect(parseCluster('3/10')).toEqual({ index: 3, total: 10 });
    expect(parseCluster('10/10')).toEqual({ index: 10, total: 10 });
  });

  it.each(['0/10', '11/10', '3', '3/0', 'a/b', '-1/5', '1.5/3', ''])('refuses %j naming the spec', (spec) => {
    expect(() => parseCluster(spec)).toThrow(ClusterSpecError);
    expect(() => parseCluster(spec)).toThrow(`Invalid cluster ${JSON.stringify(spec)}: expected "i/N"`);
  });
});

describe('clusterRange', () => {
  it('covers every row exactly once with sizes that differ by at most one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 500 }), (total, clusters) => {
        let next = 0;
        const sizes: number[] = [];
        for (let i = 1; i <= clusters; i += 1) {
          const { offset, limit } = clusterRange(total, i, clusters);
          expect(offset).toBe(next);
          next += limit;
          sizes.push(limit);
        }
        expect(next).toBe(total);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('gives the first clusters the extra rows', () => {
    expect([1, 2, 3].map((i) => clusterRange(10, i, 3))).toEqual([
      { offset: 0, limit: 4 },
      { offset: 4, limit: 3 },
      { offset: 7, limit: 3 },
    ]);
  });

  it('refuses a cluster outside 1..N and a negative row count', () => {
    expect(() => clusterRange(10, 0, 3)).toThrow(ClusterSpecError);
    expect(() => clusterRange(10, 4, 3)).toThrow('Invalid cluster "4/3"');
    expect(() => clusterRange(-1, 1, 3)).toThrow('Invalid total: expected a whole number of rows >= 0, got -1');
  });
});

describe('keyset clusters', () => {
  it('splits a sorted id list into consecutive BETWEEN ranges that hold every id once', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 1_000_000 }), { maxLength: 400 }), fc.integer({ min: 1, max: 50 }), (raw, clusters) => {
        const ids = [...raw].sort((a, b) => a - b);
        const covered: number[] = [];
        let previousLast = -Infinity;
        for (let i = 1; i <= clusters; i += 1) {
          const keys = clusterKeys(ids, i, clusters);
          if (keys === null) continue;
          expect(keys.first).toBeGreaterThan(previousLast);
          previousLast = keys.last;
          covered.push(...ids.filter((id) => id >= keys.first && id <= keys.last));
        }
        expect(covered).toEqual(ids);
      }),
    );
  });

  it('gives null to clusters left without ids', () => {
    expect(clusterKeys([5, 9], 3, 3)).toBeNull();
    expect(clusterKeys([5, 9], 2, 3)).toEqual({ first: 9, last: 9 });
  });

  it('splits min..max into balanced spans that cover every id once', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 60 }), (min, width, clusters) => {
        const max = min + width;
        let next = min;
        for (let i = 1; i <= clusters; i += 1) {
          const keys = clusterKeyRange(min, max, i, clusters);
          if (keys === null) continue;
          expect(keys.first).toBe(next);
          next = keys.last + 1;
        }
        expect(next).toBe(max + 1);
      }),
    );
  });

  it('splits bigint ids past 2^53 exactly', () => {
    const min = 2n ** 60n;
    const max = min + 9n;
    expect(clusterKeyRange(min, max, 1, 3)).toEqual({ first: min, last: min + 3n });
    expect(clusterKeyRange(min, max, 3, 3)).toEqual({ first: min + 7n, last: max });
  });
});
