// The granular BrokerStore operations expressed as StoreOp values, shared by both implementations: each only says
// what `apply` does with an operation (keep it in memory, or also write it to the log).
import type { Message } from '../message.js';
import type { SubscriptionEntry } from '../session.js';
import type { StoreOp } from './ops.js';
import { StoreState } from './state.js';
import type { BrokerStore, StoreContents, StoredDelivery, StoredWill, StoreLiveView, StoreSize } from './types.js';

export abstract class OpStore implements BrokerStore {
  abstract readonly durable: boolean;
  abstract readonly writable: boolean;
  abstract readonly refusal: string | undefined;
  abstract readonly broken: boolean;
  abstract readonly idle: boolean;
  /** What has been applied (memory) or written (log). */
  protected state = new StoreState();
  protected nextId = 1;
  operations = 0;

  abstract load(): Promise<StoreContents>;
  /** Memory: the state is the only copy, nothing to hand over. LogStore overrides it. */
  attachLive(_view: StoreLiveView): void {}
  protected abstract apply(op: StoreOp): void;
  abstract commit(): Promise<void>;
  abstract whenWritten(): Promise<void>;
  abstract size(): StoreSize;
  abstract close(): Promise<void>;

  flush(): Promise<void> {
    return this.commit();
  }

  #issue(op: StoreOp): void {
    this.operations++;
    this.apply(op);
  }

  putSession(clientId: string, expiryInterval: number, expiresAt: number, owner?: string | null): void {
    this.#issue({ op: 'session', clientId, expiryInterval, expiresAt, owner });
  }
  deleteSession(clientId: string): void {
    this.#issue({ op: 'session-del', clientId });
  }
  addSubscription(clientId: string, entry: SubscriptionEntry): void {
    this.#issue({ op: 'sub', clientId, entry: { ...entry } });
  }
  removeSubscription(clientId: string, filter: string): void {
    this.#issue({ op: 'unsub', clientId, filter });
  }
  putMessage(message: Message): number {
    if (message.storeId !== undefined) return message.storeId;
    const id = this.nextId++;
    message.storeId = id;
    this.#issue({ op: 'msg', id, message });
    return id;
  }
  newEntryId(): number {
    return this.nextId++;
  }
  enqueue(clientId: string, entryId: number, delivery: StoredDelivery): void {
    this.#issue({ op: 'enqueue', clientId, entryId, delivery });
  }
  dequeue(clientId: string, entryId: number): void {
    this.#issue({ op: 'dequeue', clientId, entryId });
  }
  setInflight(clientId: string, packetId: number, delivery: StoredDelivery, fromEntryId: number | undefined): void {
    this.#issue({ op: 'inflight', clientId, packetId, delivery, fromEntryId });
  }
  releaseInflight(clientId: string, packetId: number): void {
    this.#issue({ op: 'inflight-rel', clientId, packetId });
  }
  completeInflight(clientId: string, packetId: number): void {
    this.#issue({ op: 'inflight-del', clientId, packetId });
  }
  addInboundQos2(clientId: string, packetId: number): void {
    this.#issue({ op: 'qos2', clientId, packetId });
  }
  removeInboundQos2(clientId: string, packetId: number): void {
    this.#issue({ op: 'qos2-del', clientId, packetId });
  }
  setRetained(message: Message): void {
    const messageId = this.putMessage(message);
    this.#issue({ op: 'retain', topic: message.topic, messageId, message });
  }
  clearRetained(topic: string): void {
    this.#issue({ op: 'retain-del', topic });
  }
  putWill(will: StoredWill): void {
    this.#issue({ op: 'will', will });
  }
  deleteWill(clientId: string): void {
    this.#issue({ op: 'will-del', clientId });
  }
}
