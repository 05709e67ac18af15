// Incoming messages as an async iterator. Each iterator buffers what arrives until it is read; breaking out of a
// `for await` (or `return()`) detaches it, and the client ends every iterator when it closes.

export class MessageStream<T> implements AsyncIterableIterator<T> {
  private readonly buffer: T[] = [];
  private readonly readers: Array<(result: IteratorResult<T>) => void> = [];
  private done = false;
  private droppedValues = 0;

  constructor(
    private readonly detach: (stream: MessageStream<T>) => void,
    /** Called when the buffer shrank (a read, or the stream ended): the client may resume reading its socket. */
    private readonly drained: () => void = () => {},
    /** Called for each buffered value as it leaves the buffer, read or discarded (the client's held acks). */
    private readonly taken: (value: T) => void = () => {},
  ) {}

  /** Messages buffered and not yet read. */
  get pending(): number {
    return this.buffer.length;
  }

  /** Values this iterator never got because it was too far behind (the client's QoS 0 messages). */
  get dropped(): number {
    return this.droppedValues;
  }

  /** @internal Counts a value dropped for this iterator. */
  countDrop(): void {
    this.droppedValues++;
  }

  /** Hands `value` to a waiting reader, or buffers it: true when buffered. */
  push(value: T): boolean {
    if (this.done) return false;
    const reader = this.readers.shift();
    if (reader !== undefined) reader({ value, done: false });
    else this.buffer.push(value);
    return reader === undefined;
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    // What it buffered stays readable, but nothing more will come to read it for: whatever waits on its reading
    // (the client's held acks) is let go now, once (reads after the end call `taken` no more).
    for (const value of this.buffer) this.taken(value);
    this.detach(this);
    for (const reader of this.readers.splice(0)) reader({ value: undefined, done: true });
    this.drained();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) {
      const value = this.buffer.shift() as T;
      if (!this.done) this.taken(value);
      this.drained();
      return Promise.resolve({ value, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.readers.push(resolve));
  }

  return(): Promise<IteratorResult<T>> {
    const discarded = this.buffer.splice(0);
    if (!this.done) for (const value of discarded) this.taken(value);
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
