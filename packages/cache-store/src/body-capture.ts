/**
 * The bytes of a response body as the app writes them, up to a limit: past it the capture stops
 * holding memory and only remembers that the page was too large.
 */
export class BodyCapture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private over = false;

  constructor(private readonly limit: number) {}

  /**
   * Adds one chunk as res.write or res.end received it, and returns the bytes of a string chunk:
   * the caller hands those on to Node in the string's place. The page is then encoded once, and
   * what stays alive until it is stored is a Buffer outside the JavaScript heap rather than a
   * string the young-generation collector copies (measured on the miss path: keeping strings
   * tripled the collector's time per request, encoding twice cost a fifth of the throughput).
   */
  add(chunk: unknown, encoding?: unknown): Buffer | undefined {
    if (this.over || chunk === undefined || chunk === null) return undefined;
    let bytes: Buffer;
    if (typeof chunk === 'string') {
      bytes = Buffer.from(chunk, typeof encoding === 'string' && Buffer.isEncoding(encoding) ? encoding : 'utf8');
    } else if (chunk instanceof Uint8Array) {
      // Held, not copied: a stream's caller may not touch a chunk it has written (Node's own
      // socket write holds it the same way).
      bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    } else {
      return undefined;
    }
    this.size += bytes.length;
    if (this.size > this.limit) {
      this.over = true;
      this.chunks.length = 0;
      return undefined;
    }
    this.chunks.push(bytes);
    return typeof chunk === 'string' ? bytes : undefined;
  }

  get overflowed(): boolean {
    return this.over;
  }

  body(): Buffer {
    return this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.size);
  }
}
