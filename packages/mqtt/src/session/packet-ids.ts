// Packet identifier allocation: ids 1..65535, handed out round-robin so a just-freed id is not reused at once
// (a late duplicate ack for it would be mistaken for the new message), skipping ids still in use.
import { MqttError } from '../codec/errors.js';

export class PacketIdAllocator {
  private readonly inUse = new Set<number>();
  private nextId = 1;

  get size(): number {
    return this.inUse.size;
  }

  has(id: number): boolean {
    return this.inUse.has(id);
  }

  allocate(): number {
    if (this.inUse.size >= 0xffff) {
      throw new MqttError('MQTT_ERR_PACKET_ID_EXHAUSTED', 'all 65535 packet identifiers are in use');
    }
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 0xffff ? 1 : id + 1;
      if (!this.inUse.has(id)) {
        this.inUse.add(id);
        return id;
      }
    }
  }

  /** Marks an id as used (restored from a store). */
  claim(id: number): void {
    this.inUse.add(id);
  }

  release(id: number): void {
    this.inUse.delete(id);
  }

  clear(): void {
    this.inUse.clear();
  }
}
