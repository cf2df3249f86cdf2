import { ClusterSpecError } from './errors.js';

/** One cluster of a job: the `i` and `N` of `i/N`, with 1 <= index <= total. */
export interface Cluster {
  readonly index: number;
  readonly total: number;
}

/** The rows of one cluster as SQL's `OFFSET offset LIMIT limit`. */
export interface ClusterRange {
  readonly offset: number;
  readonly limit: number;
}

/** The first and last id of one cluster, for `WHERE id BETWEEN first AND last`. */
export interface ClusterKeys<Id> {
  readonly first: Id;
  readonly last: Id;
}

const SPEC = /^\s*(\d+)\s*\/\s*(\d+)\s*$/;

/** Reads the `i/N` a cluster was started with, such as `'3/10'`. */
export function parseCluster(spec: string): Cluster {
  const match = typeof spec === 'string' ? SPEC.exec(spec) : null;
  if (!match) throw new ClusterSpecError(spec);
  const index = Number(match[1]);
  const total = Number(match[2]);
  if (!Number.isSafeInteger(total) || total < 1 || index < 1 || index > total) throw new ClusterSpecError(spec);
  return { index, total };
}

/**
 * The rows cluster `index` of `clusters` takes out of `total` rows. Sizes differ by at most one
 * row (the first `total % clusters` clusters take one more), and the clusters 1..N together cover
 * every row exactly once.
 */
export function clusterRange(total: number, index: number, clusters: number): ClusterRange {
  if (!Number.isSafeInteger(total) || total < 0) {
    throw new RangeError(`Invalid total: expected a whole number of rows >= 0, got ${String(total)}`);
  }
  checkIndex(index, clusters);
  const base = Math.floor(total / clusters);
  const larger = total % clusters;
  return { offset: (index - 1) * base + Math.min(index - 1, larger), limit: base + (index <= larger ? 1 : 0) };
}

/**
 * The keyset form of {@link clusterRange} for tables where OFFSET is slow: the first and last id of
 * cluster `index` in `sortedIds` (ascending, each id once), or null for a cluster with no rows
 * (when there are fewer ids than clusters).
 */
export function clusterKeys<Id>(sortedIds: readonly Id[], index: number, clusters: number): ClusterKeys<Id> | null {
  const { offset, limit } = clusterRange(sortedIds.length, index, clusters);
  if (limit === 0) return null;
  return { first: sortedIds[offset] as Id, last: sortedIds[offset + limit - 1] as Id };
}

/**
 * The keyset form from only the smallest and largest id: splits the id range min..max (both
 * included) into balanced spans. Fits dense integer ids; give bigints for ids past 2^53.
 */
export function clusterKeyRange(min: number, max: number, index: number, clusters: number): ClusterKeys<number> | null;
export function clusterKeyRange(min: bigint, max: bigint, index: number, clusters: number): ClusterKeys<bigint> | null;
export function clusterKeyRange(
  min: number | bigint,
  max: number | bigint,
  index: number,
  clusters: number,
): ClusterKeys<number> | ClusterKeys<bigint> | null {
  checkIndex(index, clusters);
  if (typeof min === 'number' || typeof max === 'number') {
    for (const [name, value] of [['min', min], ['max', max]] as const) {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
        throw new RangeError(`Invalid ${name}: expected a safe integer id (or bigints for both), got ${String(value)}`);
      }
    }
  }
  const low = BigInt(min);
  const high = BigInt(max);
  if (high < low) throw new RangeError(`Invalid id range: max ${String(max)} is below min ${String(min)}`);
  // Done in bigint so a span of ids wider than 2^53 still splits exactly.
  const span = high - low + 1n;
  const n = BigInt(clusters);
  const i = BigInt(index);
  const base = span / n;
  const larger = span % n;
  const offset = (i - 1n) * base + (i - 1n < larger ? i - 1n : larger);
  const limit = base + (i <= larger ? 1n : 0n);
  if (limit === 0n) return null;
  const first = low + offset;
  const last = first + limit - 1n;
  return typeof min === 'bigint' ? { first, last } : { first: Number(first), last: Number(last) };
}

function checkIndex(index: number, clusters: number): void {
  if (!Number.isSafeInteger(clusters) || clusters < 1 || !Number.isSafeInteger(index) || index < 1 || index > clusters) {
    throw new ClusterSpecError(`${String(index)}/${String(clusters)}`);
  }
}
