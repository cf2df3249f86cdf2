/**
 * The bytes of a response body as the app writes them, up to a limit: past it the capture stops
 * holding memory and only remembers that the page was too large.
 */
export class BodyCapture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private over = false;

  constructor(private readonly limit: number) {}

  /** Adds one chunk as res.write or res.end received it. */
  add(chunk: unknown, encoding?: unknown): void {
    if (this.over || chunk === undefined || chunk === null) return;
    let bytes: Buffer;
    if (typeof chunk === 'string') {
      bytes = Buffer.from(chunk, Buffer.isEncoding(encoding as string) ? (encoding as BufferEncoding) : 'utf8');
    } else if (chunk instanceof Uint8Array) {
      // A copy: the app may reuse its buffer once write returns.
      bytes = Buffer.from(chunk);
    } else {
      return;
    }
    this.size += bytes.length;
    if (this.size > this.limit) {
      this.over = true;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(bytes);
  }

  get overflowed(): boolean {
    return this.over;
  }

  body(): Buffer {
    return this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.size);
  }
}
