// The store's gzip: one zlib engine per store, reset between pages, writing into one output buffer.
import { types } from 'node:util';
import { constants, createGzip, gunzipSync, gzipSync } from 'node:zlib';

/** What a zlib stream keeps under its private names: the native engine and the counts it leaves after a write. */
interface ZlibEngine {
  writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, output: Uint8Array, outOffset: number, outLength: number): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number) => void;
}

interface ZlibStreamInternals {
  _handle?: ZlibEngine;
  /** [bytes of output left, bytes of input left] after the last write. */
  _writeState?: Uint32Array;
}

/**
 * Gzips pages in this thread, one at a time, without a new zlib context per page.
 *
 * `zlib.gzipSync` builds a deflate context (about 256 KB outside V8's heap) for every call and
 * returns a slice of its 16 KB output chunk, which a stored page then keeps alive. Here one engine
 * is reset between pages and writes into one output buffer; the caller copies out the bytes it
 * keeps. That engine is Node's own, reached through a zlib stream's private `_handle` (the same
 * calls zlib.gzipSync makes: writeSync, then reset where gzipSync would close): where a Node
 * version lacks it, or its output does not read back, every page goes through `zlib.gzipSync`.
 */
export class PageGzip {
  private engine: { handle: ZlibEngine; state: Uint32Array } | undefined;
  private failure: string | undefined;
  private output: Buffer | undefined;
  private input: Buffer | undefined;
  /** False once the engine proved unusable on this Node: every page then goes through gzipSync. */
  private reuse: boolean;

  constructor(
    private readonly level: number,
    /** The largest output a page may have: more is "too large". */
    private readonly maxBytes: number,
    options: { reuse?: boolean } = {},
  ) {
    this.reuse = options.reuse ?? true;
  }

  /** Whether pages go through one reused engine (false: zlib.gzipSync per page). */
  get reusesEngine(): boolean {
    return this.reuse && this.open() !== undefined;
  }

  /**
   * The page gzipped into a Buffer of exactly its size, which nothing larger backs (a stored page
   * keeps no zlib chunk alive); undefined when that is more than `limit` bytes (at most maxBytes).
   * @throws Error when zlib fails (the engine is then replaced).
   */
  gzip(page: string | Uint8Array, limit: number): Buffer | undefined {
    const gzipped = this.compress(page, limit);
    if (gzipped === undefined) return undefined;
    // allocUnsafeSlow: allocUnsafe would hand a small page a slice of Node's shared 8 KB pool.
    const own = Buffer.allocUnsafeSlow(gzipped.length);
    gzipped.copy(own);
    return own;
  }

  /** The page gzipped into the output buffer (valid until the next call), or undefined past `limit`. */
  private compress(page: string | Uint8Array, limit: number): Buffer | undefined {
    const bytes = typeof page === 'string' ? this.encode(page) : page;
    const engine = this.reuse ? this.open() : undefined;
    if (!engine) {
      const gzipped = gzipSync(bytes, { level: this.level });
      return gzipped.length > Math.min(limit, this.maxBytes) ? undefined : gzipped;
    }
    const output = (this.output ??= Buffer.allocUnsafeSlow(this.maxBytes));
    const room = Math.min(limit, this.maxBytes);
    this.failure = undefined;
    try {
      engine.handle.writeSync(constants.Z_FINISH, bytes, 0, bytes.byteLength, output, 0, room);
      if (this.failure !== undefined) throw new Error(`zlib failed: ${this.failure}`);
      const [outputLeft, inputLeft] = engine.state as unknown as [number, number];
      // Output full before the end of the stream: the page does not fit in `limit`.
      if (outputLeft === 0 || inputLeft !== 0) return undefined;
      return output.subarray(0, room - outputLeft);
    } catch (error) {
      this.discard();
      throw error;
    } finally {
      // A page cut short leaves the stream mid-way: the next page starts from a fresh header.
      if (this.engine === engine) this.resetOrDiscard();
    }
  }

  /** Lets go of the engine's native memory. */
  close(): void {
    this.discard();
    this.output = undefined;
    this.input = undefined;
  }

  /** A string page encoded into the input buffer, which grows to the largest page seen. */
  private encode(page: string): Buffer {
    const length = Buffer.byteLength(page, 'utf8');
    if (this.input === undefined || this.input.length < length) this.input = Buffer.allocUnsafeSlow(Math.max(length, 64 * 1024));
    const written = this.input.write(page, 0, 'utf8');
    return this.input.subarray(0, written);
  }

  private open(): { handle: ZlibEngine; state: Uint32Array } | undefined {
    if (this.engine || !this.reuse) return this.engine;
    try {
      const stream = createGzip({ level: this.level }) as unknown as ZlibStreamInternals;
      const handle = stream._handle;
      const state = stream._writeState;
      if (typeof handle?.writeSync !== 'function' || typeof handle.reset !== 'function' || !types.isUint32Array(state) || state.length < 2) {
        this.reuse = false;
        return undefined;
      }
      // The stream would destroy itself on an error; the store wants to hear of it and go on.
      handle.onerror = (message: string) => {
        this.failure = message;
      };
      this.engine = { handle, state };
      if (!this.readsBack()) {
        this.discard();
        this.reuse = false;
      }
    } catch {
      this.discard();
      this.reuse = false;
    }
    return this.engine;
  }

  /** Two pages through the engine read back as they went in: the engine behaves as zlib.gzipSync's. */
  private readsBack(): boolean {
    const sample = Buffer.from(`<p>${'sitecache '.repeat(40)}</p>`);
    for (let i = 0; i < 2; i++) {
      const gzipped = this.compress(sample, this.maxBytes);
      if (!gzipped || !gunzipSync(gzipped).equals(sample)) return false;
    }
    return true;
  }

  private resetOrDiscard(): void {
    try {
      this.engine?.handle.reset();
    } catch {
      this.discard();
    }
  }

  private discard(): void {
    const engine = this.engine;
    this.engine = undefined;
    try {
      engine?.handle.close();
    } catch {
      // Closed already.
    }
  }
}
