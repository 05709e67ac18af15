// The in-memory store: today's behaviour, no disk. It keeps the state so that a new broker handed the same store
// (tests, embedding) gets the sessions back, exactly as a durable store would after a restart.
import { OpStore } from './base.js';
import type { StoreOp } from './ops.js';
import type { StoreContents, StoreSize } from './types.js';

const settled = Promise.resolve();

export class MemoryStore extends OpStore {
  readonly durable = false;
  readonly writable = true;
  readonly refusal = undefined;
  readonly broken = false;
  readonly idle = true;

  async load(): Promise<StoreContents> {
    this.state.dropUnreferenced();
    this.nextId = Math.max(this.nextId, this.state.maxId + 1);
    return this.state.contents();
  }

  protected apply(op: StoreOp): void {
    this.state.apply(op);
  }

  commit(): Promise<void> {
    return settled;
  }

  whenWritten(): Promise<void> {
    return settled;
  }

  size(): StoreSize {
    return { bytes: 0, segments: 0, messages: this.state.messages.size };
  }

  async close(): Promise<void> {}
}
