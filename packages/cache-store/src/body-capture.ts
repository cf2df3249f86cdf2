// Most pages fit, so a streamed page rarely moves; past it the buffer grows fourfold, so that a
// page at the default 1 MiB limit moves twice at most (its first 64 KiB, then 256 KiB).
const FIRST_CAPACITY = 64 * 1024;
const GROWTH = 4;

/**
 * The bytes of a response body as the app writes them, up to a limit: past it the capture stops
 * holding memory and only remembers that the page was too large.
 *
 * A byte is copied only where it must be:
 * - a body handed whole to end() (what Express's res.send and Fastify's send do) is kept as it
 *   is: a Buffer by reference, since after end() the app has handed it over and may not touch it
 *   again; a string is encoded once into a Buffer the capture owns, which Node sends in its place;
 * - chunks passed to write() are copied into the capture's own buffer (encoded straight into it
 *   for a string), since an app may reuse a Buffer once write() calls back. That copy replaces
 *   the concatenation of the chunks: body() returns the buffer as it is. Only a page past 64 KiB
 *   moves, when the buffer grows.
 */
export class BodyCapture {
  /** The body handed whole to end(), by reference. */
  private whole: Buffer | undefined;
  /** The capture's own copy of what write() was given; bytes below `size` are never written again. */
  private buffer: Buffer | undefined;
  private size = 0;
  private over = false;

  constructor(private readonly limit: number) {}

  /**
   * A chunk as res.write received it. Returns the bytes of a string chunk, a view of the
   * capture's own buffer: the caller hands those on to Node in the string's place, so the page
   * is encoded once (measured on the miss path: keeping strings alive tripled the young-generation
   * collector's time per request, encoding twice cost a fifth of the throughput).
   */
  write(chunk: unknown, encoding?: unknown): Buffer | undefined {
    if (this.over || chunk === undefined || chunk === null) return undefined;
    if (typeof chunk === 'string') {
      const coding = typeof encoding === 'string' && Buffer.isEncoding(encoding) ? encoding : 'utf8';
      const length = Buffer.byteLength(chunk, coding);
      if (length === 0 || !this.reserve(length)) return undefined;
      const buffer = this.buffer as Buffer;
      const start = this.size;
      this.size += buffer.write(chunk, start, length, coding);
      return buffer.subarray(start, this.size);
    }
    if (chunk instanceof Uint8Array) {
      if (chunk.byteLength === 0 || !this.reserve(chunk.byteLength)) return undefined;
      (this.buffer as Buffer).set(chunk, this.size);
      this.size += chunk.byteLength;
    }
    return undefined;
  }

  /**
   * The chunk res.end received (or a whole payload handed over at once). Returns the bytes of a
   * string chunk, as write() does.
   */
  end(chunk: unknown, encoding?: unknown): Buffer | undefined {
    if (this.over || chunk === undefined || chunk === null) return undefined;
    if (this.buffer !== undefined || this.whole !== undefined) return this.write(chunk, encoding);
    let bytes: Buffer;
    if (typeof chunk === 'string') {
      bytes = Buffer.from(chunk, typeof encoding === 'string' && Buffer.isEncoding(encoding) ? encoding : 'utf8');
    } else if (chunk instanceof Uint8Array) {
      // Held, not copied: the app handed it over with end().
      bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    } else {
      return undefined;
    }
    if (bytes.length > this.limit) {
      this.overflow();
      return undefined;
    }
    this.whole = bytes;
    this.size = bytes.length;
    return typeof chunk === 'string' ? bytes : undefined;
  }

  get overflowed(): boolean {
    return this.over;
  }

  /** The body so far, without a copy. */
  body(): Buffer {
    return this.whole ?? this.buffer?.subarray(0, this.size) ?? Buffer.alloc(0);
  }

  /** Makes room for `length` more bytes in the capture's own buffer, or overflows. */
  private reserve(length: number): boolean {
    const needed = this.size + length;
    if (needed > this.limit) {
      this.overflow();
      return false;
    }
    if (this.buffer === undefined) {
      // A body handed whole to end() and then more chunks (only past end(), which Node refuses):
      // start the own buffer from it.
      this.buffer = Buffer.allocUnsafe(Math.min(this.limit, Math.max(needed, FIRST_CAPACITY)));
      if (this.whole) this.buffer.set(this.whole);
      this.whole = undefined;
    } else if (needed > this.buffer.length) {
      // Bytes already handed to Node stay where they are: the old buffer is left to it, not reused.
      const grown = Buffer.allocUnsafe(Math.min(this.limit, Math.max(needed, this.buffer.length * GROWTH)));
      this.buffer.copy(grown, 0, 0, this.size);
      this.buffer = grown;
    }
    return true;
  }

  private overflow(): void {
    this.over = true;
    this.whole = undefined;
    this.buffer = undefined;
  }
}
