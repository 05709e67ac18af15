// The in-memory store: survives reconnects, not restarts. Records are immutable once put (the session hands out
// fresh objects), so keeping references is safe.
import type { StoredRecord } from '../../session/records.js';
import type { MessageStore } from './store.js';

export class MemoryStore implements MessageStore {
  private readonly records = new Map<string, StoredRecord>();

  get size(): number {
    return this.records.size;
  }

  put(key: string, record: StoredRecord): void {
    this.records.set(key, record);
  }

  get(key: string): StoredRecord | undefined {
    return this.records.get(key);
  }

  delete(key: string): void {
    this.records.delete(key);
  }

  list(): StoredRecord[] {
    return [...this.records.values()];
  }
}
