// Incoming messages as an async iterator. Each iterator buffers what arrives until it is read; breaking out of a
// `for await` (or `return()`) detaches it, and the client ends every iterator when it closes.

export class MessageStream<T> implements AsyncIterableIterator<T> {
  private readonly buffer: T[] = [];
  private readonly readers: Array<(result: IteratorResult<T>) => void> = [];
  private done = false;

  constructor(
    private readonly detach: (stream: MessageStream<T>) => void,
    /** Called when the buffer shrank (a read, or the stream ended): the client may resume reading its socket. */
    private readonly drained: () => void = () => {},
  ) {}

  /** Messages buffered and not yet read. */
  get pending(): number {
    return this.buffer.length;
  }

  push(value: T): void {
    if (this.done) return;
    const reader = this.readers.shift();
    if (reader !== undefined) reader({ value, done: false });
    else this.buffer.push(value);
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.detach(this);
    for (const reader of this.readers.splice(0)) reader({ value: undefined, done: true });
    this.drained();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) {
      const value = this.buffer.shift() as T;
      this.drained();
      return Promise.resolve({ value, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.readers.push(resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.buffer.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
