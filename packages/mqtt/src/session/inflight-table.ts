// Unacknowledged QoS 1/2 publishes by packet id, in the order they were sent: what a client session looks up on
// every PUBACK, PUBREC and PUBCOMP, and resends in order after a reconnect.
//
// A Map did this, and its upkeep was ~10 % of what a QoS 1 message allocated (140 of ~1 450 bytes): an ordered hash
// table leaves a hole per delete, so with a steady window of 20 it rebuilt its backing store every dozen messages,
// and shrank and grew again around each lull. Here an entry sits in the slot its id selects (id & mask), alone, so
// that a lookup, an addition and a removal are one array access each and allocate nothing. The session hands out
// ids round-robin and prefers those whose slot is free (`fits`); an id that collides (one restored from a store, or
// taken when no free id fitted) doubles the slots until it has its own, which at 65 536 slots every id has. Send order
// is a list threaded through the entries.

/** What the table needs of an entry: its id, and two links it owns while the entry is in the table. */
export interface InflightEntry {
  packetId: number | undefined;
  /** Counted apart when 2 (see `exactlyOnce`). */
  readonly qos?: number;
  sentBefore: InflightEntry | undefined;
  sentAfter: InflightEntry | undefined;
}

const MIN_SLOTS = 16;
/** Every packet id (1-65535) has a slot of its own at this size. */
const MAX_SLOTS = 0x10000;

/** The slots of a table that never held anything: a client that only listens (most of a fleet's) allocates none. */
const NO_SLOTS: readonly undefined[] = Object.freeze([undefined]);

export class InflightTable<E extends InflightEntry> {
  private slots: (E | undefined)[] = NO_SLOTS as undefined[];
  private mask = 0;
  private count = 0;
  private qos2 = 0;
  private first: E | undefined;
  private last: E | undefined;

  get size(): number {
    return this.count;
  }

  /** Entries of QoS 2 (a 3.1.1 session caps them apart: see ClientSession.pump). */
  get exactlyOnce(): number {
    return this.qos2;
  }

  get(id: number): E | undefined {
    const entry = this.slots[id & this.mask];
    return entry !== undefined && entry.packetId === id ? entry : undefined;
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Whether the slot `id` selects is free now (a fuller table still doubles on `add`, keeping ids apart). */
  fits(id: number): boolean {
    return this.slots[id & this.mask] === undefined;
  }

  /** Adds an entry under its packetId, last in send order. The id must not be in the table. */
  add(entry: E): void {
    const id = entry.packetId as number;
    // At most half full, so that most ids a session tries next fit; and never two ids in one slot.
    let length = this.slots === NO_SLOTS ? MIN_SLOTS : this.slots.length;
    if ((this.count + 1) * 2 > length) length *= 2;
    while (length < MAX_SLOTS && this.collides(id, length - 1)) length *= 2;
    if (length !== this.slots.length) this.resize(length);
    // Only an id outside 1-65535 can still collide here; overwriting would lose an unacknowledged message.
    if (this.slots[id & this.mask] !== undefined) throw new RangeError(`packet id ${id} collides in the table`);
    this.slots[id & this.mask] = entry;
    this.count++;
    if (entry.qos === 2) this.qos2++;
    entry.sentBefore = this.last;
    entry.sentAfter = undefined;
    if (this.last === undefined) this.first = entry;
    else this.last.sentAfter = entry;
    this.last = entry;
  }

  /** Removes the entry held under `id`, if any, and returns it. */
  delete(id: number): E | undefined {
    const entry = this.get(id);
    if (entry === undefined) return undefined;
    this.slots[id & this.mask] = undefined;
    this.count--;
    if (entry.qos === 2) this.qos2--;
    this.unlink(entry);
    // A burst of thousands in flight is over: give the slots back.
    if (this.count === 0 && this.slots.length > MIN_SLOTS * 8) this.resize(MIN_SLOTS);
    return entry;
  }

  /** Empties the table; the entries' links are cleared. */
  clear(): void {
    for (let entry = this.first; entry !== undefined; ) {
      const next = entry.sentAfter as E | undefined;
      entry.sentBefore = undefined;
      entry.sentAfter = undefined;
      entry = next;
    }
    this.slots = NO_SLOTS as undefined[];
    this.mask = 0;
    this.count = 0;
    this.qos2 = 0;
    this.first = undefined;
    this.last = undefined;
  }

  /** The entries in the order they were added (a copy: the table may change while the caller walks it). */
  inSendOrder(): E[] {
    const entries: E[] = [];
    for (let entry = this.first; entry !== undefined; entry = entry.sentAfter as E | undefined) entries.push(entry);
    return entries;
  }

  /** Whether `id` would share a slot with an entry at this mask. Ids distinct modulo a size stay so at twice it. */
  private collides(id: number, mask: number): boolean {
    if (mask === this.mask) return this.slots[id & mask] !== undefined;
    for (let entry = this.first; entry !== undefined; entry = entry.sentAfter as E | undefined) {
      if (((entry.packetId as number) & mask) === (id & mask)) return true;
    }
    return false;
  }

  private resize(length: number): void {
    this.slots = new Array<E | undefined>(length).fill(undefined);
    this.mask = length - 1;
    for (let entry = this.first; entry !== undefined; entry = entry.sentAfter as E | undefined) {
      this.slots[(entry.packetId as number) & this.mask] = entry;
    }
  }

  private unlink(entry: E): void {
    const before = entry.sentBefore as E | undefined;
    const after = entry.sentAfter as E | undefined;
    if (before === undefined) this.first = after;
    else before.sentAfter = after;
    if (after === undefined) this.last = before;
    else after.sentBefore = before;
    entry.sentBefore = undefined;
    entry.sentAfter = undefined;
  }
}
