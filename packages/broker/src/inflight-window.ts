// A session's outbound QoS 1/2 messages waiting for the client's PUBACK, PUBREC or PUBCOMP, by packet id, in the order
// they were sent: looked up on every acknowledgement, resent in order when the client comes back.
//
// A Map did this, and its upkeep was ~9 % of what a QoS 1 delivery allocated (132 of ~1 400 bytes, point-to-point):
// an ordered hash table leaves a hole per delete, so a steady window rebuilt its backing store every few dozen
// messages, and shrank and grew again around each lull. Here each message is one object in the slot its id selects
// (the client's table, @otalink/mqtt/inflight-table), linked in send order, and the session prefers ids whose slot
// is free (`fits`). It reads like a ReadonlyMap for the store's snapshots and the session's walks.
import { InflightTable, type InflightEntry as Linked } from '@otalink/mqtt/inflight-table';
import type { Delivery } from './message.js';

/**
 * 'publish': waiting for PUBACK/PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP (the message is delivered; after a
 * restart it is no longer known).
 */
export type InflightEntry =
  | { readonly state: 'publish'; readonly delivery: Delivery }
  | { readonly state: 'pubrel'; readonly delivery: Delivery | undefined };

/** One message in the window: what InflightEntry shows, and the table's links. */
class Slot implements Linked {
  packetId: number | undefined;
  sentBefore: Slot | undefined = undefined;
  sentAfter: Slot | undefined = undefined;
  state: 'publish' | 'pubrel';
  delivery: Delivery | undefined;

  constructor(packetId: number, state: 'publish' | 'pubrel', delivery: Delivery | undefined) {
    this.packetId = packetId;
    this.state = state;
    this.delivery = delivery;
  }
}

/** A slot as its readers see it: a 'publish' slot always has its delivery. */
const asEntry = (slot: Slot): InflightEntry => slot as InflightEntry;

export class InflightWindow implements ReadonlyMap<number, InflightEntry> {
  readonly #table = new InflightTable<Slot>();

  get size(): number {
    return this.#table.size;
  }

  get(packetId: number): InflightEntry | undefined {
    const slot = this.#table.get(packetId);
    return slot === undefined ? undefined : asEntry(slot);
  }

  has(packetId: number): boolean {
    return this.#table.has(packetId);
  }

  /** Whether `packetId`'s slot is free, so that taking it keeps the table as it is (see InflightTable.fits). */
  fits(packetId: number): boolean {
    return this.#table.fits(packetId);
  }

  /** A PUBLISH sent under `packetId` (1-65535, not in the window), last in send order. */
  publish(packetId: number, delivery: Delivery): void {
    this.#table.add(new Slot(packetId, 'publish', delivery));
  }

  /** The message under `packetId` was received (PUBREC): PUBREL is out. It keeps its place in the send order. */
  pubrel(packetId: number): void {
    const slot = this.#table.get(packetId);
    if (slot !== undefined) slot.state = 'pubrel';
  }

  /** Puts `entry` under `packetId`: in its place if the id is in the window, else last (a session being restored). */
  set(packetId: number, entry: InflightEntry): this {
    const slot = this.#table.get(packetId);
    if (slot === undefined) {
      this.#table.add(new Slot(packetId, entry.state, entry.delivery));
    } else {
      slot.state = entry.state;
      slot.delivery = entry.delivery;
    }
    return this;
  }

  delete(packetId: number): boolean {
    return this.#table.delete(packetId) !== undefined;
  }

  clear(): void {
    this.#table.clear();
  }

  forEach(
    callback: (entry: InflightEntry, packetId: number, window: ReadonlyMap<number, InflightEntry>) => void,
  ): void {
    for (const slot of this.#table.inSendOrder()) callback(asEntry(slot), slot.packetId as number, this);
  }

  /** In send order, from a copy: the caller may delete what it visits (a resend that no longer fits). */
  entries(): MapIterator<[number, InflightEntry]> {
    return this.#table
      .inSendOrder()
      .map((slot): [number, InflightEntry] => [slot.packetId as number, asEntry(slot)])
      .values();
  }

  keys(): MapIterator<number> {
    return this.#table
      .inSendOrder()
      .map((slot) => slot.packetId as number)
      .values();
  }

  values(): MapIterator<InflightEntry> {
    return this.#table.inSendOrder().map(asEntry).values();
  }

  [Symbol.iterator](): MapIterator<[number, InflightEntry]> {
    return this.entries();
  }
}
